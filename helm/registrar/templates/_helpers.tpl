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

{{- /* Whether the brokers' CA comes from kafka.caSecret. */ -}}
{{- define "registrar.kafkaCa" -}}
{{- if and .Values.kafka.caSecret.name (or (eq .Values.kafka.securityProtocol "sasl_ssl") (eq .Values.kafka.securityProtocol "ssl")) (not (and .Values.tls.caSecret .Values.tls.kafka)) }}true{{ end }}
{{- end }}

{{- /* The CA certificates of the backends (tls.caSecret, kafka.caSecret), when configured. */ -}}
{{- define "registrar.tlsVolumes" -}}
{{- if or .Values.tls.caSecret (include "registrar.kafkaCa" .) }}
volumes:
  {{- if .Values.tls.caSecret }}
  - name: backend-ca
    secret: {secretName: {{ .Values.tls.caSecret | quote }}}
  {{- end }}
  {{- if include "registrar.kafkaCa" . }}
  - name: kafka-ca
    secret:
      secretName: {{ .Values.kafka.caSecret.name | quote }}
      items: [{key: {{ .Values.kafka.caSecret.key | quote }}, path: {{ .Values.kafka.caSecret.key | quote }}}]
  {{- end }}
{{- end }}
{{- end }}

{{- define "registrar.tlsVolumeMounts" -}}
{{- if or .Values.tls.caSecret (include "registrar.kafkaCa" .) }}
volumeMounts:
  {{- if .Values.tls.caSecret }}
  - {name: backend-ca, mountPath: /etc/registrar/tls, readOnly: true}
  {{- end }}
  {{- if include "registrar.kafkaCa" . }}
  - {name: kafka-ca, mountPath: /etc/registrar/kafka-ca, readOnly: true}
  {{- end }}
{{- end }}
{{- end }}

{{- /* The component's Kafka principal (kafka.sasl.<component>): username and password. */ -}}
{{- define "registrar.kafkaEnv" -}}
{{- $root := index . 0 }}{{- $who := index $root.Values.kafka.sasl (index . 1) }}
{{- if hasPrefix "sasl_" $root.Values.kafka.securityProtocol }}
env:
  - {name: KAFKA_SASL_USERNAME, value: {{ $who.username | quote }}}
  - name: KAFKA_SASL_PASSWORD
    valueFrom: {secretKeyRef: {name: {{ $who.passwordSecret | quote }}, key: {{ $who.passwordKey | quote }}}}
{{- end }}
{{- end }}

{{- /* Settings weaker than the README's recommendations are refused unless asked for. */ -}}
{{- define "registrar.checks" -}}
{{- if and (not (hasPrefix "sasl_" .Values.kafka.securityProtocol)) (not .Values.kafka.allowUnauthenticated) }}
{{- fail (printf "kafka.securityProtocol %s lets any client that reaches the brokers write registrations: use sasl_ssl, or set kafka.allowUnauthenticated" .Values.kafka.securityProtocol) }}
{{- end }}
{{- if and .Values.secrets.DATABASE_URL (not (contains "sslmode=verify-full" .Values.secrets.DATABASE_URL)) (not .Values.tls.allowUnverifiedDatabase) }}
{{- fail "secrets.DATABASE_URL must carry sslmode=verify-full (or set tls.allowUnverifiedDatabase)" }}
{{- end }}
{{- end }}
