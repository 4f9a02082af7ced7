{{/*
Names and labels of the dask chart. Objects are named <release>-scheduler and <release>-worker, as stable/dask
named them for the release <pb_id>-dask that processing scripts install.
*/}}
{{- define "dask.scheduler" -}}
{{- printf "%s-scheduler" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "dask.worker" -}}
{{- printf "%s-worker" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The Helm deployer maps pods to deployments by app.kubernetes.io/instance: every pod carries it. */}}
{{- define "dask.selectorLabels" -}}
app.kubernetes.io/name: dask
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "dask.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "dask.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: ska-sdp
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "dask.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | toString) -}}
{{- end -}}
