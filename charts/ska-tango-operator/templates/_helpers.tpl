{{/*
Names and labels of the operator chart. Objects are named <release>-COMP unless fullnameOverride is set.
*/}}
{{- define "operator.name" -}}
{{- .Values.nameOverride | default "tango-operator" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "operator.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: tango-operator
app.kubernetes.io/part-of: ska-sdp
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) -}}
{{- end -}}

{{- define "operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "operator.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* Cluster-scoped objects carry the namespace too: one operator per namespace may be installed. */}}
{{- define "operator.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "operator.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prometheus scraping of /metrics: this chart's `metrics` values, else the umbrella's global.metrics (either switch
turns a thing on; this chart's labels, interval and scrapeTimeout win). A YAML map: serviceMonitor, labels,
interval, scrapeTimeout, scrapeAnnotations. */}}
{{- define "operator.metrics" -}}
{{- $global := dig "metrics" dict (.Values.global | default dict) -}}
{{- $globalMonitor := dig "serviceMonitor" dict $global -}}
{{- $monitor := .Values.metrics.serviceMonitor -}}
serviceMonitor: {{ or $monitor.enabled (dig "enabled" false $globalMonitor) }}
labels: {{ merge (deepCopy ($monitor.labels | default dict)) (dig "labels" dict $globalMonitor) | toJson }}
interval: {{ $monitor.interval | default (dig "interval" "" $globalMonitor) | quote }}
scrapeTimeout: {{ $monitor.scrapeTimeout | default (dig "scrapeTimeout" "" $globalMonitor) | quote }}
scrapeAnnotations: {{ or .Values.metrics.scrapeAnnotations (dig "scrapeAnnotations" false $global) }}
{{- end -}}

{{/* The pods' annotations: podAnnotations and, with metrics.scrapeAnnotations, prometheus.io/scrape, prometheus.io/port
(http.port) and prometheus.io/path; podAnnotations win. */}}
{{- define "operator.podAnnotations" -}}
{{- $annotations := deepCopy (.Values.podAnnotations | default dict) -}}
{{- if (include "operator.metrics" . | fromYaml).scrapeAnnotations -}}
{{- $annotations = merge $annotations (dict "prometheus.io/scrape" "true" "prometheus.io/port" (toString (int .Values.http.port)) "prometheus.io/path" "/metrics") -}}
{{- end -}}
{{- with $annotations }}{{ toYaml . }}{{ end -}}
{{- end -}}

{{/* The chart's Grafana dashboards: dashboards.enabled, or the umbrella's global.dashboards.enabled. */}}
{{- define "operator.dashboards" -}}
{{- if or .Values.dashboards.enabled (dig "dashboards" "enabled" false (.Values.global | default dict)) }}true{{ end -}}
{{- end -}}
