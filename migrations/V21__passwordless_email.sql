-- Passwordless sign-in by mail: a link and a 6-digit code, single use, 10 minutes.
-- Both are account tokens (SHA-256 digests only); a code's digest covers the address
-- with it, and a new mail replaces the codes before it.
ALTER TABLE account_tokens DROP CONSTRAINT account_tokens_purpose_check;
ALTER TABLE account_tokens ADD CONSTRAINT account_tokens_purpose_check CHECK (purpose IN (
    'verify_email', 'reset_password', 'sign_in', 'sign_in_code'));

ALTER TABLE mail_outbox DROP CONSTRAINT mail_outbox_kind_check;
ALTER TABLE mail_outbox ADD CONSTRAINT mail_outbox_kind_check CHECK (kind IN (
    'verify_email', 'verify_new_email', 'email_change_notice', 'password_reset',
    'password_changed', 'second_factor_failures', 'registration_attempt',
    'second_factor_enabled', 'second_factor_disabled', 'second_factor_reset',
    'webhook_disabled', 'sign_in'));
