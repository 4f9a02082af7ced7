{{/*
Names and labels of the configdb chart. Objects are named <release>-COMP unless fullnameOverride is set.
*/}}
{{- define "configdb.name" -}}
{{- .Values.nameOverride | default "etcd" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "configdb.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "configdb.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "configdb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "configdb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "configdb.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "configdb.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: configuration-database
app.kubernetes.io/part-of: ska-sdp
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "configdb.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) -}}
{{- end -}}

{{/* The Secret with the server's TLS certificate: this chart's value, else the umbrella's; empty: no TLS. */}}
{{- define "configdb.tlsSecret" -}}
{{- .Values.tls.serverSecret | default (dig "configDb" "tls" "serverSecret" "" (.Values.global | default dict)) -}}
{{- end -}}
