"""The integration fabric: connections to Zenoti, Mindbody and Standard Webhooks senders, their signed
webhooks taken into a durable inbox, and the inbox applied to the system of record."""
