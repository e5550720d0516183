{{/* The ConfigMap's data: GAMEMETRICS_* variables from the infrastructure values, then `settings`. */}}
{{- define "gm.settings" -}}
{{- $s := dict "GAMEMETRICS_HOST" "0.0.0.0" "GAMEMETRICS_PORT" (toString .Values.httpPort) "GAMEMETRICS_DATA_DIR" "/var/lib/gamemetrics" -}}
{{- $_ := set $s "GAMEMETRICS_AUTH_ISSUER" .Values.auth.issuer -}}
{{- $_ := set $s "GAMEMETRICS_AUTH_AUDIENCE" .Values.auth.audience -}}
{{- with .Values.auth.jwksUrl }}{{ $_ := set $s "GAMEMETRICS_AUTH_JWKS_URL" . }}{{ end -}}
{{- with .Values.kafka -}}
{{- if .bootstrap -}}
{{- $_ := set $s "GAMEMETRICS_KAFKA_BOOTSTRAP" .bootstrap -}}
{{- $_ := set $s "GAMEMETRICS_KAFKA_SECURITY_PROTOCOL" .securityProtocol -}}
{{- $_ := set $s "GAMEMETRICS_KAFKA_SASL_MECHANISM" .saslMechanism -}}
{{- with .saslUsername }}{{ $_ := set $s "GAMEMETRICS_KAFKA_SASL_USERNAME" . }}{{ end -}}
{{- $_ := set $s "GAMEMETRICS_KAFKA_TOPIC_PREFIX" .topicPrefix -}}
{{- $_ := set $s "GAMEMETRICS_KAFKA_REPLICATION_FACTOR" (toString .replicationFactor) -}}
{{- $_ := set $s "GAMEMETRICS_KAFKA_MIN_INSYNC_REPLICAS" (toString .minInsyncReplicas) -}}
{{- if .tls.caSecret }}{{ $_ := set $s "GAMEMETRICS_KAFKA_SSL_CA_LOCATION" "/etc/gamemetrics/kafka-ca/ca.crt" }}{{ end -}}
{{- if .tls.clientCertSecret -}}
{{- $_ := set $s "GAMEMETRICS_KAFKA_SSL_CERTIFICATE_LOCATION" "/etc/gamemetrics/kafka-client/tls.crt" -}}
{{- $_ := set $s "GAMEMETRICS_KAFKA_SSL_KEY_LOCATION" "/etc/gamemetrics/kafka-client/tls.key" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if .Values.redis.enabled }}{{ $_ := set $s "GAMEMETRICS_REDIS_NAMESPACE" .Values.redis.namespace }}{{ end -}}
{{- with .Values.qdrant.url }}{{ $_ := set $s "GAMEMETRICS_QDRANT_URL" . }}{{ end -}}
{{- with .Values.tracing.otlpEndpoint }}{{ $_ := set $s "GAMEMETRICS_OTEL_EXPORTER_OTLP_ENDPOINT" . }}{{ end -}}
{{- with .Values.s3 -}}
{{- if .archiveUrl -}}
{{- $_ := set $s "GAMEMETRICS_ARCHIVE_URL" .archiveUrl -}}
{{- $_ := set $s "GAMEMETRICS_S3_REGION" .region -}}
{{- with .endpointUrl }}{{ $_ := set $s "GAMEMETRICS_S3_ENDPOINT_URL" . }}{{ end -}}
{{- end -}}
{{- end -}}
{{- with .Values.smtp -}}
{{- if .host -}}
{{- $_ := set $s "GAMEMETRICS_SMTP_HOST" .host -}}
{{- $_ := set $s "GAMEMETRICS_SMTP_PORT" (toString .port) -}}
{{- with .username }}{{ $_ := set $s "GAMEMETRICS_SMTP_USERNAME" . }}{{ end -}}
{{- $_ := set $s "GAMEMETRICS_MAIL_FROM" .from -}}
{{- end -}}
{{- end -}}
{{- range $key, $value := .Values.settings }}{{ $_ := set $s $key (toString $value) }}{{ end -}}
{{- range $key := keys $s | sortAlpha }}
{{ $key }}: {{ get $s $key | quote }}
{{- end }}
{{- end -}}
