{{/*
Names and labels of the vis-receive chart. The StatefulSet and its headless Service are both <release>, so
that receive process i is <release>-<i>.<release>.<namespace>.svc.cluster.local.
*/}}
{{- define "visReceive.fullname" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The Helm deployer maps pods to deployments by app.kubernetes.io/instance: every pod carries it. */}}
{{- define "visReceive.selectorLabels" -}}
app.kubernetes.io/name: vis-receive
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: receive
{{- end -}}

{{- define "visReceive.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "visReceive.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: ska-sdp
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.pb_id }}
sdp.skao.int/processing-block: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* The ports of one receive process, as a list of integers. */}}
{{- define "visReceive.ports" -}}
{{- $first := int .Values.receive.port -}}
{{- $n := int .Values.receive.portsPerProcess -}}
{{- if gt (add $first $n -1) 65535 -}}
{{- fail (printf "receive.port %d + receive.portsPerProcess %d goes past port 65535" $first $n) -}}
{{- end -}}
{{- $ports := list -}}
{{- range $i := until $n -}}
{{- $ports = append $ports (add $first $i) -}}
{{- end -}}
{{- toJson $ports -}}
{{- end -}}
