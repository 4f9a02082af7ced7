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

{{- define "helmdeploy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "helmdeploy.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* The Secret with the configuration database client's TLS files: this chart's value, else the umbrella's; empty:
no TLS. */}}
{{- define "helmdeploy.configDbTlsSecret" -}}
{{- .Values.configDb.tlsSecret | default (dig "configDb" "tls" "clientSecret" "" (.Values.global | default dict)) -}}
{{- end -}}

{{/* SDP_CONFIG_CACERT, SDP_CONFIG_CERT and SDP_CONFIG_KEY, with the Secret of helmdeploy.configDbTlsSecret mounted as
helmdeploy.configDbTlsVolume says. */}}
{{- define "helmdeploy.configDbTlsEnv" -}}
{{- if include "helmdeploy.configDbTlsSecret" . }}
- name: SDP_CONFIG_CACERT
  value: /etc/sdp/configdb-tls/ca.crt
- name: SDP_CONFIG_CERT
  value: /etc/sdp/configdb-tls/tls.crt
- name: SDP_CONFIG_KEY
  value: /etc/sdp/configdb-tls/tls.key
{{- end }}
{{- end -}}

{{- define "helmdeploy.configDbTlsMount" -}}
{{- if include "helmdeploy.configDbTlsSecret" . }}
- name: configdb-tls
  mountPath: /etc/sdp/configdb-tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "helmdeploy.configDbTlsVolume" -}}
{{- with include "helmdeploy.configDbTlsSecret" . }}
- name: configdb-tls
  secret:
    secretName: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* Prometheus scraping of /metrics: this chart's `metrics` values, else the umbrella's global.metrics (either switch
turns a thing on; this chart's labels, interval and scrapeTimeout win). A YAML map: serviceMonitor, labels,
interval, scrapeTimeout, scrapeAnnotations. */}}
{{- define "helmdeploy.metrics" -}}
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
{{- define "helmdeploy.podAnnotations" -}}
{{- $annotations := deepCopy (.Values.podAnnotations | default dict) -}}
{{- if (include "helmdeploy.metrics" . | fromYaml).scrapeAnnotations -}}
{{- $annotations = merge $annotations (dict "prometheus.io/scrape" "true" "prometheus.io/port" (toString (int .Values.http.port)) "prometheus.io/path" "/metrics") -}}
{{- end -}}
{{- with $annotations }}{{ toYaml . }}{{ end -}}
{{- end -}}

{{/*
The chart repositories as SDP_CHART_REPOS lists them: name=source, comma-separated, in name order.
*/}}
{{- define "helmdeploy.chartRepos" -}}
{{- $entries := list -}}
{{- range $name, $source := . -}}
{{- $entries = append $entries (printf "%s=%s" $name $source) -}}
{{- end -}}
{{- join "," $entries -}}
{{- end -}}
