{{/*
ska-sdp-tango-util: one Tango device server process, declared once, rendered in either form.

  {{ include "ska-sdp-tango-util.deviceserver" (dict "root" $ "server" $server) }}

With global.operator true it is a DeviceServer (tango.tango-controls.org/v1) that the Tango operator runs once
its dependencies are up, loading `config` into the Tango database first; otherwise a StatefulSet and a headless
Service with TANGO_HOST set. The description ($server):

  name:        object name (required)
  component:   app.kubernetes.io/component label (default: name)
  image:       "<repository>:<tag>" (required); pullPolicy (default IfNotPresent)
  command:     the program and its arguments, a list (required)
  servers:     the devices the process serves, which is its config:
               {"<executable>/<instance>": {"<class>": ["<device>", ...]}} (required)
  dependsOn:   devices (e.g. sys/database/2) or host:port it waits for (operator form)
  databaseds:  the DatabaseDS it registers in (operator form; default: the release's, ska-sdp-tango-util.databaseds)
  tangoHost:   TANGO_HOST, host:port of the Tango database (plain form; default: the release's database,
               ska-sdp-tango-util.tangoHost)
  env:         more environment variables (EnvVar list)
  ports:       container ports (plain form), e.g. [{name: http, containerPort: 8080}]
  dsconfig:    plain form, for a server that does not register itself: an image with json2tango (dsconfig),
               which an init container runs to load the config, as the operator does before starting it
  resources, securityContext, podSecurityContext, readinessProbe, livenessProbe: as in a pod
*/}}
{{- define "ska-sdp-tango-util.deviceserver" -}}
{{- $root := .root -}}
{{- $s := .server -}}
{{- $operator := dig "operator" false ($root.Values.global | default dict) -}}
{{- $labels := include "ska-sdp-tango-util.labels" . -}}
{{- if $operator }}
apiVersion: tango.tango-controls.org/v1
kind: DeviceServer
metadata:
  name: {{ $s.name }}
  labels:
    {{- $labels | nindent 4 }}
spec:
  # The process names itself in the Tango database (several servers in one process): no ORB endpoint arguments.
  legacycompatibility: false
  databaseds: {{ $s.databaseds | default (include "ska-sdp-tango-util.databaseds" $root) }}
  image: {{ $s.image | quote }}
  imagePullPolicy: {{ $s.pullPolicy | default "IfNotPresent" }}
  dsname: {{ include "ska-sdp-tango-util.dsname" $s }}
  command: {{ join " " $s.command | quote }}
  config: |
    {{- include "ska-sdp-tango-util.config" $s | nindent 4 }}
  {{- with $s.dependsOn }}
  dependsOn:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $s.env }}
  env:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $s.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $s.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- else }}
{{- $tangoHost := $s.tangoHost | default (include "ska-sdp-tango-util.tangoHost" $root) }}
apiVersion: v1
kind: Service
metadata:
  name: {{ $s.name }}
  labels:
    {{- $labels | nindent 4 }}
spec:
  clusterIP: None
  selector:
    {{- include "ska-sdp-tango-util.selectorLabels" . | nindent 4 }}
  {{- with $s.ports }}
  ports:
    {{- range . }}
    - name: {{ .name }}
      port: {{ .containerPort }}
      targetPort: {{ .name }}
    {{- end }}
  {{- end }}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ $s.name }}
  labels:
    {{- $labels | nindent 4 }}
  annotations:
    # What the Tango operator loads into the Tango database: the init container's (dsconfig), else the process's.
    tango-controls.org/config: {{ include "ska-sdp-tango-util.config" $s | fromJson | toJson | quote }}
spec:
  replicas: 1
  serviceName: {{ $s.name }}
  selector:
    matchLabels:
      {{- include "ska-sdp-tango-util.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- $labels | nindent 8 }}
    spec:
      automountServiceAccountToken: false
      {{- with $s.podSecurityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $s.dsconfig }}
      initContainers:
        - name: dsconfig
          image: {{ . | quote }}
          imagePullPolicy: {{ $s.pullPolicy | default "IfNotPresent" }}
          # json2tango exits 2 when it changed something.
          command: [/bin/sh, -c, 'printf "%s" "$TANGO_CONFIG" > /tmp/config.json && { json2tango -w -a -u /tmp/config.json || [ $? -eq 2 ]; }']
          env:
            - name: TANGO_HOST
              value: {{ $tangoHost | quote }}
            - name: TANGO_CONFIG
              value: {{ include "ska-sdp-tango-util.config" $s | fromJson | toJson | quote }}
      {{- end }}
      containers:
        - name: deviceserver
          image: {{ $s.image | quote }}
          imagePullPolicy: {{ $s.pullPolicy | default "IfNotPresent" }}
          command:
            {{- toYaml $s.command | nindent 12 }}
          env:
            - name: TANGO_HOST
              value: {{ $tangoHost | quote }}
            {{- with $s.env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- with $s.ports }}
          ports:
            {{- range . }}
            - name: {{ .name }}
              containerPort: {{ .containerPort }}
              protocol: TCP
            {{- end }}
          {{- end }}
          {{- with $s.readinessProbe }}
          readinessProbe:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with $s.livenessProbe }}
          livenessProbe:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with $s.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with $s.securityContext }}
          securityContext:
            {{- toYaml . | nindent 12 }}
          {{- end }}
{{- end }}
{{- end -}}

{{/*
The release's Tango database, which its Tango components use unless told otherwise: the name of the DataBaseds
Service (TANGO_HOST <name>:10000) without the operator, of the DatabaseDS (and the Service the operator makes for
it) with the operator. global.tangoDatabase, a template (the umbrella's is databaseds-tango-base-{{ .Release.Name }}),
else databaseds-tango-base-<release>: ska-tango-base's name, one database per release, so that two releases in one
namespace do not share one. Called with the chart's root context.
*/}}
{{- define "ska-sdp-tango-util.databaseds" -}}
{{- $name := printf "databaseds-tango-base-%s" .Release.Name -}}
{{- with dig "tangoDatabase" "" (.Values.global | default dict) }}{{ $name = tpl . $ }}{{ end -}}
{{- if not (and (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $name) (le (len $name) 33)) -}}
{{- fail (printf "global.tangoDatabase: the Tango database's name %q is not a DNS label of at most 33 characters (lower-case letters, digits and '-'; the Tango operator's StatefulSet databaseds-tangodb-<name> must stay within 52): set global.tangoDatabase to one (the default, databaseds-tango-base-<release>, fits a release name of up to 11 characters)" $name) -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{/* TANGO_HOST of the release's Tango database: <ska-sdp-tango-util.databaseds>:10000, its Service in the
release's namespace. */}}
{{- define "ska-sdp-tango-util.tangoHost" -}}
{{- printf "%s:10000" (include "ska-sdp-tango-util.databaseds" .) -}}
{{- end -}}

{{/* The executable of the first server: the DeviceServer's dsname. */}}
{{- define "ska-sdp-tango-util.dsname" -}}
{{- keys .servers | sortAlpha | first | splitList "/" | first -}}
{{- end -}}

{{/* The device servers' config, as json2tango reads it: {"servers": {exe: {instance: {class: {device: {}}}}}}. */}}
{{- define "ska-sdp-tango-util.config" -}}
{{- $servers := dict -}}
{{- range $server, $classes := .servers -}}
{{- $parts := splitList "/" $server -}}
{{- if ne (len $parts) 2 -}}
{{- fail (printf "device server %s: %q is not <executable>/<instance>" $.name $server) -}}
{{- end -}}
{{- $instances := get $servers (index $parts 0) | default dict -}}
{{- $byClass := dict -}}
{{- range $class, $devices := $classes -}}
{{- $named := dict -}}
{{- range $devices }}{{ $_ := set $named . dict }}{{ end -}}
{{- $_ := set $byClass $class $named -}}
{{- end -}}
{{- $_ := set $instances (index $parts 1) $byClass -}}
{{- $_ := set $servers (index $parts 0) $instances -}}
{{- end -}}
{{- toPrettyJson (dict "servers" $servers) -}}
{{- end -}}

{{- define "ska-sdp-tango-util.selectorLabels" -}}
app.kubernetes.io/name: {{ .server.component | default .server.name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "ska-sdp-tango-util.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "ska-sdp-tango-util.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/component: {{ .server.component | default .server.name }}
app.kubernetes.io/part-of: ska-sdp
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}
