"""Provider adapters: Twilio for sms/mms/whatsapp, SendGrid for email."""
