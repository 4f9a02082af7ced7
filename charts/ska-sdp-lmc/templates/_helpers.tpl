{{/*
Names and labels of the lmc chart. Objects are named <release>-COMP unless fullnameOverride is set.
*/}}
{{- define "lmc.name" -}}
{{- .Values.nameOverride | default "lmc" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lmc.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "lmc.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "lmc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lmc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "lmc.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "lmc.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: lmc
app.kubernetes.io/part-of: ska-sdp
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "lmc.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) -}}
{{- end -}}

{{/* Configuration database (etcd) client address: this chart's value, else global.configDb, else the
configuration database chart of the same release. */}}
{{- define "lmc.configHost" -}}
{{- .Values.configDb.host | default (dig "configDb" "host" "" (.Values.global | default dict)) | default (printf "%s-etcd-client" .Release.Name) -}}
{{- end -}}

{{- define "lmc.configPort" -}}
{{- .Values.configDb.port | default (dig "configDb" "port" 0 (.Values.global | default dict)) | default 2379 -}}
{{- end -}}

