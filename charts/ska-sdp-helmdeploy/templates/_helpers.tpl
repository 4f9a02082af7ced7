{{/*
Names and labels of the helmdeploy chart. Objects are named <release>-COMP unless fullnameOverride is set.
*/}}
{{- define "helmdeploy.name" -}}
{{- .Values.nameOverride | default "helmdeploy" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "helmdeploy.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "helmdeploy.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "helmdeploy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "helmdeploy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "helmdeploy.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "helmdeploy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: helm-deployer
app.kubernetes.io/part-of: ska-sdp
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "helmdeploy.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) -}}
{{- end -}}

{{/* Configuration database (etcd) client address: this chart's value, else global.configDb, else the
configuration database chart of the same release. */}}
{{- define "helmdeploy.configHost" -}}
{{- .Values.configDb.host | default (dig "configDb" "host" "" (.Values.global | default dict)) | default (printf "%s-etcd-client" .Release.Name) -}}
{{- end -}}

{{- define "helmdeploy.configPort" -}}
{{- .Values.configDb.port | default (dig "configDb" "port" 0 (.Values.global | default dict)) | default 2379 -}}
{{- end -}}

{{/* Namespace the processing scripts are deployed in: value, else global.processingNamespace, else <release namespace>-sdp. */}}
{{- define "helmdeploy.processingNamespace" -}}
{{- .Values.processingNamespace | default (dig "processingNamespace" "" (.Values.global | default dict)) | default (printf "%s-sdp" .Release.Namespace) -}}
{{- end -}}

{{- define "helmdeploy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "helmdeploy.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}
