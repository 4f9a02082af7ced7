{{- define "all-kinds.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: all-kinds
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ska-sdp
{{- end -}}

{{- define "all-kinds.podSpec" -}}
serviceAccountName: {{ .Release.Name }}
automountServiceAccountToken: false
containers:
  - name: main
    image: {{ .Values.image | quote }}
    imagePullPolicy: IfNotPresent
    command: [sleep, infinity]
{{- end -}}
