"""The root of every error the bus raises, and the errors of the contract layer.

Every package has a small ``errors.py`` whose classes derive from :class:`BusError`,
so a caller can catch everything the bus raises with one ``except`` clause.
"""

from __future__ import annotations

__all__ = [
    "AgencyListError",
    "BadMagic",
    "BusError",
    "CodecError",
    "ConfigurationError",
    "EnvelopeError",
    "HeaderDuplicated",
    "HeaderMalformed",
    "HeaderMissing",
    "HeaderTooLarge",
    "IdentifierError",
    "InsecureSettings",
    "MalformedPayload",
    "SchemaHistoryError",
    "SchemaLoadError",
    "SchemaResolutionError",
    "SchemaValidationError",
    "TrailingBytes",
    "TruncatedPayload",
    "TypeMismatch",
    "UnknownAgencyError",
    "UnknownFingerprint",
    "UnknownSchema",
]


class BusError(Exception):
    """Base class of every error raised by the bus."""


class ConfigurationError(BusError, ValueError):
    """A setting is missing or malformed."""


class InsecureSettings(ConfigurationError):  # noqa: N818 - reads as a verdict
    """Production mode with a secret still at its public demo value, empty or too short:
    ``component`` (``zf801 worker``, a publisher) refuses to start.

    ``problems`` pairs each ``ZF801_*`` variable at fault with what is wrong with it; the
    secrets themselves are never kept on the exception.
    """

    def __init__(self, component: str, problems: tuple[tuple[str, str], ...]) -> None:
        self.component = component
        self.problems = problems
        faults = "; ".join(f"{variable} {problem}" for variable, problem in problems)
        names = " and ".join(self.variables)
        secrets = "secrets" if len(problems) > 1 else "a secret"
        super().__init__(
            f"{component} refused to start: ZF801_MODE is production and {faults}. "
            f"Set {names} to {secrets} of your own, or set ZF801_MODE=demo to run a demo on "
            "a laptop."
        )

    @property
    def variables(self) -> tuple[str, ...]:
        """The ``ZF801_*`` variables at fault, in the order of the settings."""
        return tuple(variable for variable, _ in self.problems)

    def __reduce__(
        self,
    ) -> tuple[type[InsecureSettings], tuple[str, tuple[tuple[str, str], ...]]]:
        return (type(self), (self.component, self.problems))


class IdentifierError(BusError, ValueError):
    """An identifier (ID number, credit or organisation code, plate, VIN, case number,
    phone number, court code) broke a rule.

    ``field`` is the event field (e.g. ``subject.id_number``), ``rule`` a stable rule id
    (e.g. ``id_number.check_char``), ``shown`` the value as it may appear in a message
    (masked where it is personal data). The raw value is never kept on the exception.
    """

    def __init__(self, field: str, rule: str, reason: str, shown: str | None = None) -> None:
        self.field = field
        self.rule = rule
        self.reason = reason
        self.shown = shown
        value = "" if shown is None else f" '{shown}'"
        super().__init__(f"{field}{value}: {reason} [rule {rule}]")

    def __reduce__(self) -> tuple[type[IdentifierError], tuple[str, str, str, str | None]]:
        return (type(self), (self.field, self.rule, self.reason, self.shown))


class UnknownAgencyError(BusError, LookupError):
    """An agency code is not in the agency list (or has another role than required)."""

    def __init__(self, code: str, reason: str = "is not in the agency list") -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"agency {code!r} {reason}")

    def __reduce__(self) -> tuple[type[UnknownAgencyError], tuple[str, str]]:
        return (type(self), (self.code, self.reason))


class AgencyListError(ConfigurationError):
    """The agency list (``schemas/data/agencies.yaml`` or a deployment's own) is malformed."""


class SchemaLoadError(ConfigurationError):
    """An ``.avsc`` file is unreadable, is not a valid Avro schema, or clashes with another."""


class SchemaHistoryError(BusError):
    """The previous version of the schemas could not be read from git (bad ref, no repo)."""


class CodecError(BusError, ValueError):
    """A record value could not be encoded or decoded (base of the codec's errors)."""


class UnknownSchema(CodecError, LookupError):  # noqa: N818 - name fixed by the contract
    """No schema of that name is in the registry."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"schema {name!r} is not in the schema registry")

    def __reduce__(self) -> tuple[type[UnknownSchema], tuple[str]]:
        return (type(self), (self.name,))


class BadMagic(CodecError):  # noqa: N818 - name fixed by the contract
    """The value does not start with the single-object marker ``C3 01``."""


class TruncatedPayload(CodecError):  # noqa: N818 - name fixed by the contract
    """The value ends before its header or its Avro body is complete."""


class TrailingBytes(CodecError):  # noqa: N818 - name fixed by the contract
    """Bytes remain after the Avro body: the value is not one single-object record."""


class MalformedPayload(CodecError):  # noqa: N818 - name fixed by the contract
    """The Avro body does not decode under its writer schema (bad UTF-8, enum or union
    index out of range, negative length, out-of-range timestamp...)."""


class UnknownFingerprint(CodecError, LookupError):  # noqa: N818 - name fixed by the contract
    """The writer schema's fingerprint is not in the registry: never guessed."""

    def __init__(self, fingerprint: bytes) -> None:
        self.fingerprint = fingerprint
        super().__init__(
            f"writer schema fingerprint {fingerprint.hex()} (CRC-64-AVRO, little-endian) is not"
            " in the schema registry"
        )

    def __reduce__(self) -> tuple[type[UnknownFingerprint], tuple[bytes]]:
        return (type(self), (self.fingerprint,))


class SchemaResolutionError(CodecError):
    """The reader schema cannot read what the writer schema wrote (Avro resolution rules)."""


class SchemaValidationError(CodecError):
    """A record broke its schema: ``path`` names the field (``subject.id_number``,
    ``documents[2].valid_until``), ``rule`` the rule (``type``, ``maxLength``, ``required``,
    ``unknown_field``, ``symbol``, ``timezone``, ``decimal``...). Values are not echoed,
    because most fields hold personal data."""

    def __init__(self, schema: str, path: str, rule: str, reason: str) -> None:
        self.schema = schema
        self.path = path
        self.rule = rule
        self.reason = reason
        where = path or "<record>"
        super().__init__(f"{schema}: {where}: {reason} [rule {rule}]")

    def __reduce__(self) -> tuple[type[SchemaValidationError], tuple[str, str, str, str]]:
        return (type(self), (self.schema, self.path, self.rule, self.reason))


class EnvelopeError(BusError, ValueError):
    """A Kafka record's headers break the CloudEvents envelope; ``header`` names the header."""

    def __init__(self, header: str, reason: str) -> None:
        self.header = header
        self.reason = reason
        super().__init__(f"header {header!r}: {reason}")

    def __reduce__(self) -> tuple[type[EnvelopeError], tuple[str, str]]:
        return (type(self), (self.header, self.reason))


class HeaderMissing(EnvelopeError):  # noqa: N818 - name fixed by the contract
    """A required header is absent."""


class HeaderDuplicated(EnvelopeError):  # noqa: N818 - name fixed by the contract
    """A header occurs more than once (an attacker could make two readers disagree)."""


class HeaderMalformed(EnvelopeError):  # noqa: N818 - name fixed by the contract
    """A header's value is not valid UTF-8 or breaks its format."""


class HeaderTooLarge(EnvelopeError):  # noqa: N818 - name fixed by the contract
    """A header's name or value, or the number of headers, exceeds its limit."""


class TypeMismatch(EnvelopeError):  # noqa: N818 - name fixed by the contract
    """``ce_type`` differs from the full name of the value's writer schema."""
