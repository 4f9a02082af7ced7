{{/*
ska-sdp-tango-util.processingNamespace: the namespace the release's processing scripts run in, which the Helm
deployer installs them in (SDP_HELM_NAMESPACE, the Namespace object and its Role), the processing controller names
and the umbrella's notes print. One computation for all of them, from the calling chart's root context:

  {{ include "ska-sdp-tango-util.processingNamespace" . }}

its processingNamespace value, else global.processingNamespace, else <release namespace>-sdp (the seed's name: a
release in namespace integration runs its scripts in integration-sdp). The default is the release namespace's: a
second release of the umbrella in the same namespace sets global.processingNamespace of its own (helm refuses it
otherwise, as the Namespace object <namespace>-sdp belongs to the first release).
*/}}
{{- define "ska-sdp-tango-util.processingNamespace" -}}
{{- $ns := .Values.processingNamespace | default (dig "processingNamespace" "" (.Values.global | default dict)) | default (printf "%s-sdp" .Release.Namespace) -}}
{{- if gt (len $ns) 63 -}}
{{- fail (printf "the processing namespace %q is longer than 63 characters: set processingNamespace (global.processingNamespace in the umbrella)" $ns) -}}
{{- end -}}
{{- $ns -}}
{{- end -}}
