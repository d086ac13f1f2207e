-- The owner is told when two-factor sign-in is turned on or off, or removed by an admin.
ALTER TABLE mail_outbox DROP CONSTRAINT mail_outbox_kind_check;
ALTER TABLE mail_outbox ADD CONSTRAINT mail_outbox_kind_check CHECK (kind IN (
    'verify_email', 'verify_new_email', 'email_change_notice', 'password_reset',
    'password_changed', 'second_factor_failures', 'registration_attempt',
    'second_factor_enabled', 'second_factor_disabled', 'second_factor_reset'));
