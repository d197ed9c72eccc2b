{{/* The chart's name, overridable. */}}
{{- define "stormbridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: <release>-<chart> unless the release name contains the chart's. */}}
{{- define "stormbridge.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "stormbridge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "stormbridge.labels" -}}
helm.sh/chart: {{ include "stormbridge.chart" . }}
{{ include "stormbridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "stormbridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stormbridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The bundled Redis's name and labels. */}}
{{- define "stormbridge.redisName" -}}
{{- printf "%s-redis" (include "stormbridge.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "stormbridge.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ include "stormbridge.name" . }}-redis
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The store backend in effect: redis when the bundled or an external Redis is configured. */}}
{{- define "stormbridge.storeBackend" -}}
{{- if or .Values.redis.enabled .Values.redis.external.url -}}
redis
{{- else -}}
{{- .Values.store.backend -}}
{{- end -}}
{{- end }}

{{/* The Redis password Secret in effect (bundled or external), as "secretName/key" or "". */}}
{{- define "stormbridge.redisPasswordSecret" -}}
{{- if .Values.redis.enabled -}}
{{- with .Values.redis.auth.secretName }}{{ . }}/{{ $.Values.redis.auth.key }}{{ end -}}
{{- else if .Values.redis.external.url -}}
{{- with .Values.redis.external.passwordSecret.secretName }}{{ . }}/{{ $.Values.redis.external.passwordSecret.key }}{{ end -}}
{{- end -}}
{{- end }}

{{/* The [http] and [store] tables the chart appends to .Values.config. */}}
{{- define "stormbridge.generatedConfig" -}}
{{- $backend := include "stormbridge.storeBackend" . -}}
[http]
listen = "0.0.0.0:{{ .Values.service.port }}"

[store]
backend = {{ $backend | quote }}
{{- if eq $backend "sqlite" }}
path = {{ .Values.store.sqlite.path | quote }}
{{- end }}
{{- if eq $backend "redis" }}
{{- if .Values.redis.enabled }}
url = "redis://{{ include "stormbridge.redisName" . }}:6379/0"
{{- else }}
url = {{ .Values.redis.external.url | quote }}
{{- with .Values.redis.external.username }}
username = {{ . | quote }}
{{- end }}
{{- if .Values.redis.external.tlsCaSecret.secretName }}
tls_ca_file = "/run/secrets/stormbridge-redis-ca/{{ .Values.redis.external.tlsCaSecret.key }}"
{{- end }}
{{- end }}
{{- if include "stormbridge.redisPasswordSecret" . }}
password_file = "/run/secrets/stormbridge-redis/{{ base (include "stormbridge.redisPasswordSecret" .) }}"
{{- end }}
prefix = {{ .Values.store.prefix | quote }}
lease_ttl = {{ .Values.store.leaseTtl | int }}
{{- end }}
{{- if and (ne $backend "memory") .Values.store.keySecret.secretName }}
key_file = "/run/secrets/stormbridge-store-key/{{ .Values.store.keySecret.key }}"
{{- end }}
{{- end }}
