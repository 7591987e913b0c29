"""Mail: SMTP delivery and the messages callvault sends (SPEC 5)."""
