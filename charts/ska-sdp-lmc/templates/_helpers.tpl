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


{{- define "lmc.operator" -}}
{{- if dig "operator" false (.Values.global | default dict) }}true{{ end -}}
{{- end -}}

{{/* TANGO_HOST without the operator: this chart's value, else global.tangoHost, else the release's Tango database
when global.tangoDatabase names one (the umbrella's tangodb), else none. */}}
{{- define "lmc.tangoHost" -}}
{{- $global := .Values.global | default dict -}}
{{- if .Values.tango.host -}}
{{- .Values.tango.host -}}
{{- else if dig "tangoHost" "" $global -}}
{{- dig "tangoHost" "" $global -}}
{{- else if dig "tangoDatabase" "" $global -}}
{{- include "ska-sdp-tango-util.tangoHost" . -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the HTTP surface's bearer token (under http.tokenSecretKey). */}}
{{- define "lmc.tokenSecret" -}}
{{- .Values.http.tokenSecret | default (printf "%s-token" (include "lmc.fullname" .)) -}}
{{- end -}}

{{/* The environment of `sdp lmc serve`, in both forms. */}}
{{- define "lmc.env" -}}
- name: SDP_CONFIG_HOST
  value: {{ include "lmc.configHost" . | quote }}
- name: SDP_CONFIG_PORT
  value: {{ include "lmc.configPort" . | quote }}
{{- with include "lmc.configDbTlsEnv" . | trim }}
{{ . }}
{{- end }}
- name: SDP_SUBARRAYS
  value: {{ .Values.subarrays | quote }}
- name: SDP_LMC_LISTEN
  value: {{ printf "0.0.0.0:%d" (int .Values.http.port) | quote }}
- name: SDP_LMC_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "lmc.tokenSecret" . | quote }}
      key: {{ .Values.http.tokenSecretKey | quote }}
- name: RUST_LOG
  value: {{ .Values.logLevel | quote }}
{{- range $name, $value := .Values.extraEnv }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* The Tango device servers `sdp lmc serve` runs, with their devices: what it registers in the Tango database. */}}
{{- define "lmc.servers" -}}
{{- $servers := dict "SDPMaster/1" (dict "SDPMaster" (list "mid_sdp/elt/master")) -}}
{{- range $n := untilStep 1 (int (add .Values.subarrays 1)) 1 -}}
{{- $_ := set $servers (printf "SDPSubarray/%d" $n) (dict "SDPSubarray" (list (printf "mid_sdp/elt/subarray_%d" $n))) -}}
{{- end -}}
{{- toJson $servers -}}
{{- end -}}

{{/* The Secret with the configuration database client's TLS files: this chart's value, else the umbrella's; empty:
no TLS. */}}
{{- define "lmc.configDbTlsSecret" -}}
{{- .Values.configDb.tlsSecret | default (dig "configDb" "tls" "clientSecret" "" (.Values.global | default dict)) -}}
{{- end -}}

{{/* SDP_CONFIG_CACERT, SDP_CONFIG_CERT and SDP_CONFIG_KEY, with the Secret of lmc.configDbTlsSecret mounted as
lmc.configDbTlsVolume says. */}}
{{- define "lmc.configDbTlsEnv" -}}
{{- if include "lmc.configDbTlsSecret" . }}
- name: SDP_CONFIG_CACERT
  value: /etc/sdp/configdb-tls/ca.crt
- name: SDP_CONFIG_CERT
  value: /etc/sdp/configdb-tls/tls.crt
- name: SDP_CONFIG_KEY
  value: /etc/sdp/configdb-tls/tls.key
{{- end }}
{{- end -}}

{{- define "lmc.configDbTlsMount" -}}
{{- if include "lmc.configDbTlsSecret" . }}
- name: configdb-tls
  mountPath: /etc/sdp/configdb-tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "lmc.configDbTlsVolume" -}}
{{- with include "lmc.configDbTlsSecret" . }}
- name: configdb-tls
  secret:
    secretName: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* Prometheus scraping of /metrics: this chart's `metrics` values, else the umbrella's global.metrics (either switch
turns a thing on; this chart's labels, interval and scrapeTimeout win). A YAML map: serviceMonitor, labels,
interval, scrapeTimeout, scrapeAnnotations. */}}
{{- define "lmc.metrics" -}}
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
{{- define "lmc.podAnnotations" -}}
{{- $annotations := deepCopy (.Values.podAnnotations | default dict) -}}
{{- if (include "lmc.metrics" . | fromYaml).scrapeAnnotations -}}
{{- $annotations = merge $annotations (dict "prometheus.io/scrape" "true" "prometheus.io/port" (toString (int .Values.http.port)) "prometheus.io/path" "/metrics") -}}
{{- end -}}
{{- with $annotations }}{{ toYaml . }}{{ end -}}
{{- end -}}
