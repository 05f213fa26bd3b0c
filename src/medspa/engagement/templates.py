"""The words of each kind of message: built-in templates, or a location's own (`MessageTemplate`).

Templates are Jinja2, rendered in a sandbox (staff write them; a template can read the values it is
given and nothing else) with undefined names refused, so a mistake shows when the template is saved
(`check`), not when a client should have had a message. E-mail has a subject, a plain-text body and an
HTML body (escaped); SMS has a text body. Times are on the location's wall clock, services in the
clinic's own words (the service's name).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment


@dataclass(frozen=True)
class Template:
    subject: str
    text: str
    html: str = ""


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


_FOOTER_TEXT = "\n\n{{ location }}\nTo stop these e-mails: {{ unsubscribe_url }}"
_FOOTER_HTML = (
    '<p style="color:#666;font-size:12px">{{ location }} &middot; '
    '<a href="{{ unsubscribe_url }}">Stop these e-mails</a></p>'
)


def _email(subject: str, text: str, html: str) -> Template:
    return Template(subject, text + _FOOTER_TEXT, f"<html><body>{html}{_FOOTER_HTML}</body></html>")


BUILT_IN: Final[Mapping[tuple[str, str], Template]] = {
    ("confirmation", "email"): _email(
        "Booked: {{ service }} on {{ when }}",
        "Hello {{ first_name }},\n\nYour {{ service }} with {{ provider }} is booked for {{ when }} "
        "({{ time }}, {{ location }} time).\n\nTo change it, call us or reply to this e-mail.",
        "<p>Hello {{ first_name }},</p><p>Your <b>{{ service }}</b> with {{ provider }} is booked for "
        "<b>{{ when }}</b> ({{ time }}, {{ location }} time).</p>"
        "<p>To change it, call us or reply to this e-mail.</p>",
    ),
    ("confirmation", "sms"): Template(
        "", "{{ location }}: your {{ service }} is booked for {{ when }}. Reply STOP to opt out."
    ),
    ("reschedule", "email"): _email(
        "Moved: {{ service }} now on {{ when }}",
        "Hello {{ first_name }},\n\nYour {{ service }} with {{ provider }} has moved to {{ when }} "
        "({{ time }}); it was {{ previous }}.",
        "<p>Hello {{ first_name }},</p><p>Your <b>{{ service }}</b> with {{ provider }} has moved to "
        "<b>{{ when }}</b> ({{ time }}); it was {{ previous }}.</p>",
    ),
    ("reschedule", "sms"): Template(
        "", "{{ location }}: your {{ service }} has moved to {{ when }} (was {{ previous }})."
    ),
    ("cancellation", "email"): _email(
        "Cancelled: {{ service }} on {{ when }}",
        "Hello {{ first_name }},\n\nYour {{ service }} on {{ when }} ({{ time }}) is cancelled. "
        "We would be glad to find you another time.",
        "<p>Hello {{ first_name }},</p><p>Your <b>{{ service }}</b> on {{ when }} ({{ time }}) is "
        "cancelled. We would be glad to find you another time.</p>",
    ),
    ("cancellation", "sms"): Template("", "{{ location }}: your {{ service }} on {{ when }} is cancelled."),
    ("reminder", "email"): _email(
        "Reminder: {{ service }} on {{ when }}",
        "Hello {{ first_name }},\n\nA reminder of your {{ service }} with {{ provider }} on {{ when }} "
        "({{ time }}).",
        "<p>Hello {{ first_name }},</p><p>A reminder of your <b>{{ service }}</b> with {{ provider }} on "
        "<b>{{ when }}</b> ({{ time }}).</p>",
    ),
    ("reminder", "sms"): Template(
        "", "{{ location }}: {{ service }} {{ when }}. Reply C to confirm, STOP to opt out."
    ),
    ("post_care", "email"): _email(
        "After your {{ service }}",
        "Hello {{ first_name }},\n\nThank you for coming in. After your {{ service }}:\n\n{{ instructions }}",
        "<p>Hello {{ first_name }},</p><p>Thank you for coming in. After your {{ service }}:</p>"
        '<p style="white-space:pre-line">{{ instructions }}</p>',
    ),
    ("post_care", "sms"): Template("", "{{ location }}: after your {{ service }}: {{ instructions }}"),
    ("waitlist_offer", "email"): _email(
        "A {{ service }} opening on {{ when }}",
        "Hello {{ first_name }},\n\nA time you were waiting for is free: {{ service }} with {{ provider }} "
        "on {{ when }} ({{ time }}). It is yours if you book it first, until {{ expires }}:\n\n"
        "{{ offer_url }}",
        "<p>Hello {{ first_name }},</p><p>A time you were waiting for is free: <b>{{ service }}</b> with "
        "{{ provider }} on <b>{{ when }}</b> ({{ time }}). It is yours if you book it first, until "
        '{{ expires }}.</p><p><a href="{{ offer_url }}">Book this time</a></p>',
    ),
    ("waitlist_offer", "sms"): Template(
        "", "{{ location }}: {{ service }} free {{ when }}. Book by {{ expires }}: {{ offer_url }}"
    ),
    ("offer_taken", "email"): _email(
        "That {{ service }} time has been taken",
        "Hello {{ first_name }},\n\nThe {{ service }} time on {{ when }} has been taken. You are still on "
        "our waitlist.",
        "<p>Hello {{ first_name }},</p><p>The {{ service }} time on {{ when }} has been taken. You are "
        "still on our waitlist.</p>",
    ),
    ("offer_taken", "sms"): Template(
        "", "{{ location }}: the {{ service }} time {{ when }} has been taken; you are still on our waitlist."
    ),
    ("confirm_request", "email"): _email(
        "Please confirm: {{ service }} on {{ when }}",
        "Hello {{ first_name }},\n\nWill we see you for your {{ service }} on {{ when }} ({{ time }})? "
        "Please reply to confirm, or call us if you need another time, so we can offer yours to someone "
        "waiting.",
        "<p>Hello {{ first_name }},</p><p>Will we see you for your <b>{{ service }}</b> on <b>{{ when }}</b> "
        "({{ time }})? Please reply to confirm, or call us if you need another time, so we can offer yours "
        "to someone waiting.</p>",
    ),
    ("confirm_request", "sms"): Template(
        "", "{{ location }}: {{ service }} {{ when }}. Reply C to confirm, or call us to change it."
    ),
    # A follow-up names the next session of a course ("3 of 6") or the cadence's window when it has them.
    ("follow_up", "email"): _email(
        "{% if session %}Book your next {{ service }} session ({{ session }})"
        "{% else %}Time for your next {{ service }}?{% endif %}",
        "Hello {{ first_name }},\n\n{% if session %}It is time to book your next {{ service }} session "
        "({{ session }}).{% else %}It is about time for your next {{ service }}"
        "{% if window %}: we suggest one {{ window }} after the last{% endif %}.{% endif %} Reply to this "
        "e-mail or call us and we will find you a time.",
        "<p>Hello {{ first_name }},</p><p>{% if session %}It is time to book your next <b>{{ service }}</b> "
        "session ({{ session }}).{% else %}It is about time for your next <b>{{ service }}</b>"
        "{% if window %}: we suggest one {{ window }} after the last{% endif %}.{% endif %} Reply to this "
        "e-mail or call us and we will find you a time.</p>",
    ),
    ("follow_up", "sms"): Template(
        "",
        "{{ location }}: {% if session %}time to book your next {{ service }} session ({{ session }})"
        "{% else %}time for your next {{ service }}{% endif %}? Reply or call us to book. STOP to opt out.",
    ),
    ("lapse", "email"): _email(
        "We miss you at {{ location }}",
        "Hello {{ first_name }},\n\nIt has been a while since your last visit. We would be glad to see you "
        "again: reply to this e-mail or call us and we will find you a time.",
        "<p>Hello {{ first_name }},</p><p>It has been a while since your last visit. We would be glad to see "
        "you again: reply to this e-mail or call us and we will find you a time.</p>",
    ),
    ("lapse", "sms"): Template(
        "", "{{ location }}: we would be glad to see you again. Reply or call us to book. STOP to opt out."
    ),
}

# What every template may use, with the sample values a preview shows.
SAMPLE: Final[Mapping[str, str]] = {
    "first_name": "Nova",
    "service": "Signature facial",
    "provider": "Dr. Reyes",
    "location": "Lumen Downtown",
    "when": "Thu, Dec 10 at 9:30 AM",
    "time": "9:30 AM",
    "date": "Thu, Dec 10",
    "previous": "Wed, Dec 9 at 2:00 PM",
    "expires": "9:50 AM",
    "offer_url": "https://clinic.example/offers/sample",
    "unsubscribe_url": "https://clinic.example/unsubscribe/sample",
    "instructions": "Avoid sun and heat for 48 hours.",
    "window": "between 4 and 6 weeks",
    "session": "",
}


def window_label(first_day: int, last_day: int) -> str:
    """A follow-up window in words ("between 4 and 6 weeks", "between 9 and 12 months"), in days, weeks
    or months by its length; "" when both ends come to the same words."""
    if last_day < 21:
        low, high, unit = first_day, last_day, "days"
    elif last_day <= 63:
        low, high, unit = round(first_day / 7), round(last_day / 7), "weeks"
    else:
        low, high, unit = round(first_day / 30.44), round(last_day / 30.44), "months"
    return f"between {low} and {high} {unit}" if low != high else ""


def session_label(number: int, sessions: int) -> str:
    """The session of a course in words: "3 of 6"."""
    return f"{number} of {sessions}"


_ENVIRONMENTS: Final = {
    autoescape: SandboxedEnvironment(autoescape=autoescape, undefined=StrictUndefined)
    for autoescape in (False, True)
}


class TemplateInvalidError(ValueError):
    """A template that does not render with the values every message has."""


def _render(source: str, values: Mapping[str, Any], *, html: bool) -> str:
    return _ENVIRONMENTS[html].from_string(source).render(**values)


def render(template: Template, values: Mapping[str, Any]) -> Rendered:
    """The template with `values`; TemplateInvalidError when it names something it is not given."""
    try:
        return Rendered(
            subject=" ".join(_render(template.subject, values, html=False).split()),
            text=_render(template.text, values, html=False),
            html=_render(template.html, values, html=True) if template.html else "",
        )
    except TemplateError as error:
        raise TemplateInvalidError(str(error)) from error


def check(template: Template) -> Rendered:
    """Render with the sample values: the preview, and the test a template passes before it is saved."""
    return render(template, SAMPLE)
