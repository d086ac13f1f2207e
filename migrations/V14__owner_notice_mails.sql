-- The owner of an account is told when its second factor keeps being guessed wrong, and
-- when someone tries to register with its address (the poll no longer tells).
ALTER TABLE mail_outbox DROP CONSTRAINT mail_outbox_kind_check;
ALTER TABLE mail_outbox ADD CONSTRAINT mail_outbox_kind_check CHECK (kind IN (
    'verify_email', 'verify_new_email', 'email_change_notice', 'password_reset',
    'password_changed', 'second_factor_failures', 'registration_attempt'));
