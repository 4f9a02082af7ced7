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

{{/*
How a CephFS area mounts, from the keys of the seed's values table alone: storage.<key>.ceph.server (the monitors)
and .options (mount -t ceph's options). A YAML map: user (options' name=, default admin) and key (secret=), which
the CSI driver reads from a Secret, secretName (storage.<key>.ceph.secretName, else the Secret the chart makes of
them), options (the other mount options, comma-separated, for the kernel client). Fails naming the key when the
volume could not mount. Called with (dict "key" "source" "root" $).
*/}}
{{- define "staging.cephMount" -}}
{{- $ceph := (index .root.Values.storage .key).ceph -}}
{{- $at := printf "storage.%s.ceph" .key -}}
{{- $user := "" -}}
{{- $key := "" -}}
{{- $options := list -}}
{{- range $option := splitList "," ($ceph.options | default "") -}}
{{- $option = trim $option -}}
{{- if hasPrefix "name=" $option -}}
{{- $user = trimPrefix "name=" $option -}}
{{- else if hasPrefix "secret=" $option -}}
{{- $key = trimPrefix "secret=" $option -}}
{{- else if hasPrefix "secretfile=" $option -}}
{{- fail (printf "%s.options: secretfile= names a file on the node, which the CephFS CSI driver does not read: put the key in secret=<key> or in the Secret %s.secretName names (userID, userKey)" $at $at) -}}
{{- else if $option -}}
{{- $options = append $options $option -}}
{{- end -}}
{{- end -}}
{{- if $ceph.secretName -}}
{{- if or $user $key -}}
{{- fail (printf "%s.secretName names the Secret holding the Ceph user and key (userID, userKey): take name= and secret= out of %s.options" $at $at) -}}
{{- end -}}
{{- else -}}
{{- if not $key -}}
{{- fail (printf "%s.options has no secret=<key>: the CephFS CSI driver mounts with the Ceph user's key; add secret=<key> (and name=<user>, default admin) to %s.options, or name a Secret with userID and userKey in %s.secretName" $at $at $at) -}}
{{- end -}}
{{- if eq $key "<secret>" -}}
{{- fail (printf "%s.options: secret=<secret> is the values table's placeholder: put the Ceph user's key there, or name a Secret with userID and userKey in %s.secretName" $at $at) -}}
{{- end -}}
{{- end -}}
user: {{ $user | default "admin" | quote }}
key: {{ $key | quote }}
secretName: {{ $ceph.secretName | default (include "staging.cephClaimName" .) | quote }}
options: {{ join "," $options | quote }}
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
