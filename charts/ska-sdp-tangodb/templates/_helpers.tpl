{{- define "tangodb.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: tangodb
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: ska-sdp
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "tangodb.operator" -}}
{{- if dig "operator" false (.Values.global | default dict) }}true{{ end -}}
{{- end -}}

{{/* TANGO_HOST of the database this chart makes: the release's (ska-sdp-tango-util.tangoHost). */}}
{{- define "tangodb.tangoHost" -}}
{{- include "ska-sdp-tango-util.tangoHost" . -}}
{{- end -}}
