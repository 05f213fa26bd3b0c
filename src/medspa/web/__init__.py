"""Server-rendered pages (Jinja2 + HTMX): sign-in and the front desk's day view."""
