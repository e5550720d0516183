{{/* The registry's services (files/registry.json, written by deploy/helm/sync_registry.py). */}}
{{- define "gm.registry" -}}
{{- .Files.Get "files/registry.json" -}}
{{- end -}}

{{- define "gm.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "gm.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/part-of: gamemetrics
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* The release's labels, for objects of no one component. */}}
{{- define "gm.instance" -}}
app.kubernetes.io/name: gamemetrics
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels that select one component's pods: a service's name, or "jobs". Call with (list $ name). */}}
{{- define "gm.selector" -}}
app.kubernetes.io/name: gamemetrics
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* One service's settings: serviceDefaults overlaid with services.<name>. Call with (list $ name); YAML. */}}
{{- define "gm.serviceValues" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $own := get $root.Values.services $name | default dict -}}
{{- mergeOverwrite (deepCopy $root.Values.serviceDefaults) (deepCopy $own) | toYaml -}}
{{- end -}}

{{- define "gm.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "gm.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "gm.fullname" .)) -}}
{{- end -}}

{{- define "gm.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.uid }}
runAsGroup: {{ .Values.securityContext.uid }}
fsGroup: {{ .Values.securityContext.uid }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "gm.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.uid }}
runAsGroup: {{ .Values.securityContext.uid }}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The settings and credentials every container of the platform reads, and its writable mounts. */}}
{{- define "gm.envFrom" -}}
- configMapRef:
    name: {{ include "gm.fullname" . }}-settings
- secretRef:
    name: {{ include "gm.secretName" . }}
{{- end -}}

{{- define "gm.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /var/lib/gamemetrics
{{- if .Values.kafka.tls.caSecret }}
- name: kafka-ca
  mountPath: /etc/gamemetrics/kafka-ca
  readOnly: true
{{- end }}
{{- if .Values.kafka.tls.clientCertSecret }}
- name: kafka-client
  mountPath: /etc/gamemetrics/kafka-client
  readOnly: true
{{- end }}
{{- end -}}

{{- define "gm.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.scratch.tmpSize }}
- name: data
  emptyDir:
    sizeLimit: {{ .Values.scratch.dataSize }}
{{- if .Values.kafka.tls.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret }}
{{- end }}
{{- if .Values.kafka.tls.clientCertSecret }}
- name: kafka-client
  secret:
    secretName: {{ .Values.kafka.tls.clientCertSecret }}
{{- end }}
{{- end -}}

{{/* Checkov checks the chart does not meet, each with its reason; an annotations block. */}}
{{- define "gm.checkovSkips" -}}
{{- range $i, $skip := .Values.checkovSkips }}
checkov.io/skip{{ add1 $i }}: {{ printf "%s=%s" $skip.id $skip.reason | quote }}
{{- end }}
{{- end -}}
