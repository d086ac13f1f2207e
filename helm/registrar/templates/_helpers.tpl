{{- define "registrar.labels" -}}
app.kubernetes.io/name: registrar
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{- define "registrar.secretName" -}}
{{- if .Values.existingSecret }}{{ .Values.existingSecret }}{{ else }}{{ .Release.Name }}-registrar{{ end }}
{{- end }}

{{- define "registrar.envFrom" -}}
- configMapRef:
    name: {{ .Release.Name }}-registrar
- secretRef:
    name: {{ include "registrar.secretName" . }}
{{- end }}

{{- define "registrar.securityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end }}

{{- /* The CA certificates of the backends (tls.caSecret), when configured. */ -}}
{{- define "registrar.tlsVolumes" -}}
{{- if .Values.tls.caSecret }}
volumes:
  - name: backend-ca
    secret: {secretName: {{ .Values.tls.caSecret | quote }}}
{{- end }}
{{- end }}

{{- define "registrar.tlsVolumeMounts" -}}
{{- if .Values.tls.caSecret }}
volumeMounts:
  - {name: backend-ca, mountPath: /etc/registrar/tls, readOnly: true}
{{- end }}
{{- end }}
