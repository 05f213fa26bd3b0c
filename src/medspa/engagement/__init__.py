"""Engagement: the messages medspa sends clients (confirmations, reminders, cancellation notices,
post-care instructions, waitlist offers), their channels, consent, quiet hours and caps."""
