{{/*
Names and labels of the staging chart. Objects are named <release>-COMP unless fullnameOverride is set.
*/}}
{{- define "staging.name" -}}
{{- .Values.nameOverride | default "staging" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "staging.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "staging.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "staging.selectorLabels" -}}
app.kubernetes.io/name: {{ include "staging.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "staging.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "staging.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: staging-service
app.kubernetes.io/part-of: ska-sdp
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "staging.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) -}}
{{- end -}}

{{- define "staging.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "staging.fullname" .) -}}
{{- end -}}

{{- define "staging.mysqlFullname" -}}
{{- printf "%s-mysql" (include "staging.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "staging.mysqlSecretName" -}}
{{- .Values.mysql.existingSecret | default (include "staging.mysqlFullname" .) -}}
{{- end -}}

{{- define "staging.mysqlHost" -}}
{{- .Values.mysql.host | default (include "staging.mysqlFullname" .) -}}
{{- end -}}

{{- define "staging.mysqlSelectorLabels" -}}
app.kubernetes.io/name: {{ include "staging.name" . }}-mysql
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "staging.mysqlLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "staging.mysqlSelectorLabels" . }}
app.kubernetes.io/version: {{ .Values.mysql.image.tag | quote }}
app.kubernetes.io/component: staging-metadata-database
app.kubernetes.io/part-of: ska-sdp
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/*
Storage areas: "source" (SOURCE_STORAGE_PATH) and "userArea" (TARGET_STORAGE_PATH). Called with
(dict "key" "source" "root" $).
*/}}
{{- define "staging.area" -}}
{{- $area := index .root.Values.storage .key -}}
{{- $selected := index $area $area.type -}}
{{- if not $selected.enabled -}}
{{- fail (printf "storage.%s.type is %q but storage.%s.%s.enabled is false: enable it or choose an enabled type" .key $area.type .key $area.type) -}}
{{- end -}}
{{- $selected.path -}}
{{- end -}}

{{- define "staging.volumeName" -}}
{{- printf "%s-%s" (.key | lower) .backend -}}
{{- end -}}

{{- define "staging.cephClaimName" -}}
{{- printf "%s-%s-ceph" (include "staging.fullname" .root) (.key | lower | replace "area" "-area") | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "staging.cephPVName" -}}
{{- printf "%s-%s" .root.Release.Namespace (include "staging.cephClaimName" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prometheus scraping of /metrics: this chart's `metrics` values, else the umbrella's global.metrics (either switch
turns a thing on; this chart's labels, interval and scrapeTimeout win). A YAML map: serviceMonitor, labels,
interval, scrapeTimeout, scrapeAnnotations. */}}
{{- define "staging.metrics" -}}
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
(service.port) and prometheus.io/path; podAnnotations win. */}}
{{- define "staging.podAnnotations" -}}
{{- $annotations := deepCopy (.Values.podAnnotations | default dict) -}}
{{- if (include "staging.metrics" . | fromYaml).scrapeAnnotations -}}
{{- $annotations = merge $annotations (dict "prometheus.io/scrape" "true" "prometheus.io/port" (toString (int .Values.service.port)) "prometheus.io/path" "/metrics") -}}
{{- end -}}
{{- with $annotations }}{{ toYaml . }}{{ end -}}
{{- end -}}
