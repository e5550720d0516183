"""Notification templates: Jinja2 in its sandbox, one text per channel field, locale variants with
a fallback, checked at save by rendering every text with the template's sample data."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

CHANNEL_FIELDS: dict[str, tuple[str, ...]] = {
    "email": ("subject", "body"),
    "sms": ("body",),
    "push": ("title", "body"),
    "web_push": ("title", "body"),
    "in_app": ("title", "body"),
}
"""The channels of the contract and the texts a template gives each; `body` is required."""

MAX_NAME = 128
_ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)


@functools.lru_cache(maxsize=4096)
def _compiled(source: str) -> jinja2.Template:
    """A text compiled once: compiling costs far more than rendering, and every send renders."""
    compiled = _ENV.from_string(source)
    # Its globals are a ChainMap over the environment's, which every render copies key by key; the
    # environment's never change, so a plain dict of them renders the same, several times faster.
    compiled.globals = dict(compiled.globals)
    return compiled

Texts = dict[str, dict[str, str]]
"""Per channel, per field (`subject`, `title`, `body`), the template source."""


class TemplateInvalid(ValueError):
    """A template that cannot be saved or rendered; the message says which text and why."""


@dataclass(frozen=True, slots=True)
class Template:
    """A saved template: its category, whether it is critical, its texts and their locale variants."""

    name: str
    category: str
    critical: bool
    content: Texts
    locales: dict[str, Texts] = field(default_factory=dict)
    fallback_locale: str = "en"
    sample: dict[str, Any] = field(default_factory=dict)

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels it has texts for, in the contract's order."""
        return tuple(channel for channel in CHANNEL_FIELDS if channel in self.content)

    def texts(self, channel: str, locale: str | None) -> dict[str, str]:
        """The texts of `channel` in `locale` (`fi-FI`, then `fi`), else the fallback locale's, else the default."""
        for candidate in _candidates(locale, self.fallback_locale):
            variant = self.locales.get(candidate, {}).get(channel)
            if variant is not None:
                return {**self.content.get(channel, {}), **variant}
        return self.content[channel]


@dataclass(frozen=True, slots=True)
class Rendered:
    """One channel's message: its subject or title (empty for SMS) and its body."""

    channel: str
    subject: str
    body: str


def _candidates(locale: str | None, fallback: str) -> list[str]:
    found: list[str] = []
    for value in (locale, fallback):
        if value:
            found += [value, value.split("-")[0]] if "-" in value else [value]
    return found


def _texts(where: str, value: Any, *, locale_variant: bool) -> Texts:
    if not isinstance(value, dict) or not value:
        raise TemplateInvalid(f"{where} is an object of channels: {{\"email\": {{\"subject\": ..., \"body\": ...}}}}")
    texts: Texts = {}
    for channel, fields in value.items():
        if channel not in CHANNEL_FIELDS:
            raise TemplateInvalid(f"{where}: unknown channel {channel!r}; choose from {', '.join(CHANNEL_FIELDS)}")
        allowed = CHANNEL_FIELDS[channel]
        if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
            raise TemplateInvalid(f"{where}.{channel} is an object of texts: {', '.join(allowed)}")
        extra = set(fields) - set(allowed)
        if extra:
            raise TemplateInvalid(f"{where}.{channel}: {', '.join(sorted(extra))} not among {', '.join(allowed)}")
        if not locale_variant and "body" not in fields:
            raise TemplateInvalid(f"{where}.{channel} needs a body")
        texts[channel] = dict(fields)
    return texts


def parse_template(name: str, body: Any) -> Template:
    """The template `body` describes, checked (every text renders with its sample data); TemplateInvalid if not."""
    if not 1 <= len(name) <= MAX_NAME or not all(c.isalnum() or c in "-_." for c in name):
        raise TemplateInvalid(f"a template name has 1-{MAX_NAME} letters, digits, '-', '_' or '.'")
    if not isinstance(body, dict):
        raise TemplateInvalid('send {"category": ..., "content": {...}}')
    unknown = set(body) - {"category", "critical", "content", "locales", "fallback_locale", "sample"}
    if unknown:
        raise TemplateInvalid(f"unknown fields {', '.join(sorted(unknown))}")
    category, critical = body.get("category"), body.get("critical", False)
    if not isinstance(category, str) or not 1 <= len(category) <= 64:
        raise TemplateInvalid("category is a name of 1-64 characters, e.g. \"lifecycle\"")
    if not isinstance(critical, bool):
        raise TemplateInvalid("critical is true or false")
    content = _texts("content", body.get("content"), locale_variant=False)
    raw_locales, fallback = body.get("locales", {}), body.get("fallback_locale", "en")
    if not isinstance(raw_locales, dict) or not isinstance(fallback, str):
        raise TemplateInvalid('locales is an object: {"fi": {"email": {...}}}; fallback_locale a locale name')
    locales = {locale: _texts(f"locales.{locale}", texts, locale_variant=True) for locale, texts in raw_locales.items()}
    for locale, texts in locales.items():
        missing = set(texts) - set(content)
        if missing:
            raise TemplateInvalid(f"locales.{locale} has {', '.join(sorted(missing))} but content does not")
    sample = body.get("sample", {})
    if not isinstance(sample, dict):
        raise TemplateInvalid("sample is an object of the variables the texts use, for the check and preview")
    template = Template(name, category, critical, content, locales, fallback, sample)
    for locale in [None, *locales]:
        for channel in template.channels:
            render_texts(f"{locale or 'content'}.{channel}", template.texts(channel, locale), sample_context(sample))
    return template


def sample_context(sample: Mapping[str, Any]) -> dict[str, Any]:
    """What a text sees at save and preview: the sample, with a sample player unless it names one."""
    return {"player": {"id": "sample-player", "traits": {}}, **sample}


def render_texts(where: str, texts: Mapping[str, str], context: Mapping[str, Any]) -> dict[str, str]:
    """Each text rendered with `context`; TemplateInvalid names the text and the error (an undefined variable)."""
    rendered: dict[str, str] = {}
    for name, source in texts.items():
        try:
            rendered[name] = _compiled(source).render(context)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateInvalid(f"{where}.{name}: line {exc.lineno}: {exc.message}") from None
        except jinja2.UndefinedError as exc:
            raise TemplateInvalid(f"{where}.{name}: {exc.message}") from None
        except jinja2.TemplateError as exc:  # the sandbox refusing an unsafe attribute, among others
            raise TemplateInvalid(f"{where}.{name}: {type(exc).__name__}: {exc}") from None
        except (ArithmeticError, TypeError, ValueError, LookupError) as exc:
            raise TemplateInvalid(f"{where}.{name}: {type(exc).__name__}: {exc}") from None
    return rendered


def render(template: Template, channel: str, locale: str | None, context: Mapping[str, Any]) -> Rendered:
    """The message of `channel` in the player's locale; TemplateInvalid when a text does not render."""
    texts = render_texts(f"{template.name}.{channel}", template.texts(channel, locale), context)
    return Rendered(channel, texts.get("subject", texts.get("title", "")), texts["body"])


def template_json(template: Template) -> dict[str, Any]:
    """The template as the API shows it."""
    return {"name": template.name, "category": template.category, "critical": template.critical,
            "content": template.content, "locales": template.locales, "fallback_locale": template.fallback_locale,
            "sample": template.sample}
