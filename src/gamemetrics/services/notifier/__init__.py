"""The notifier: templates, notifications by API and topic, delivery with retries and fallback."""
