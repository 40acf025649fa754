"""The configuration model: frozen, typed records for a validated ``perfwarden.yaml``.

One job: declare the shape of a configuration that has already passed validation, and
the problem/error types that validation reports.  Nothing here reads files or YAML;
:mod:`perfwarden.config.load` builds these records (``parse_config``/``load_config``)
and re-exports every name, so code outside the config modules imports from there.

Every record is a ``@dataclass(frozen=True, slots=True)``; mappings are read-only
(:class:`types.MappingProxyType`) and sequences are tuples, so a ``Config`` can be
shared between tasks and swapped atomically on reload.  Durations are ``float`` seconds.

Where the YAML form differs from the Python type, the annotation says so with
``typing.Annotated`` (:data:`Seconds`, :data:`Expiry`, :data:`HostPort`,
:data:`Inline`): :mod:`perfwarden.config.schema` builds the JSON Schema from these
records and those marks alone. The enums of closed value sets are in
:mod:`perfwarden.config.choices`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping  # noqa: TC003 (get_type_hints works)
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Annotated, TypeAlias, TypeVar

from perfwarden.config.choices import (
    Basis,
    Bound,
    Isolation,
    LogLevel,
    MetricsAccess,
    OptimizerMode,
    SignedGauges,
)

__all__ = [
    "DURATION",
    "EXPIRY",
    "HOST_PORT",
    "INLINE",
    "AlertmanagerConfig",
    "Basis",
    "Bound",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "ControlConfig",
    "EvaluationConfig",
    "HttpConfig",
    "IngestConfig",
    "Isolation",
    "KnobConfig",
    "LogLevel",
    "LoggingConfig",
    "MetricConfig",
    "MetricsAccess",
    "OptimizerConfig",
    "OptimizerMode",
    "PluginConfig",
    "ProcessConfig",
    "RecordingConfig",
    "SignedGauges",
    "SocketsConfig",
    "StateConfig",
    "StatisticsConfig",
]

#: Marks of :func:`typing.Annotated`: how the YAML writes a value of that type.
DURATION = "duration"  # "250ms", "5s", "1h30m", "1d" or a number of seconds
EXPIRY = "expiry"  # a duration, or 0 / off / false: never
HOST_PORT = "host:port"  # one "host:port" string ("[::1]:9464" for IPv6)
INLINE = "inline"  # the record's other keys, written beside its own ones

Seconds: TypeAlias = Annotated[float, DURATION]
Expiry: TypeAlias = Annotated[float, EXPIRY]
HostPort: TypeAlias = Annotated[tuple[str, int], HOST_PORT]
_M = TypeVar("_M")
Inline: TypeAlias = Annotated[_M, INLINE]


_V = TypeVar("_V")


def _empty_mapping() -> Mapping[str, _V]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class StatisticsConfig:
    """How samples are summarised: the rolling window and the confidence interval."""

    confidence_level: float = 0.95
    window: int = 1000
    min_samples: int = 30
    max_series: int = 10000
    #: A series that received nothing for this long is forgotten (its window, alert
    #: state and saved state), freeing its slot under ``max_series``; ``0``: never.
    expire_after: Expiry = 3600.0
    #: Resident memory (MiB) past which lines for *new* series are shed (dropped,
    #: counted as ``memory_limit``, logged once) while existing series go on; ``0``:
    #: no ceiling.
    max_memory_mb: int = 1024


@dataclass(frozen=True, slots=True)
class EvaluationConfig:
    """How often and on what basis alerts are evaluated; ``for_`` is YAML's ``for``.

    ``for`` is either a duration (``for_``) or a number of samples
    (``for: 3 samples``, ``for_samples``); the other is then 0.
    """

    interval: Seconds = 1.0
    basis: Basis = Basis.MULTIWINDOW
    for_: Seconds = 0.0
    for_samples: int = 0
    #: Newest samples judged on the ``mean`` and ``ci`` bases and by the long window
    #: of ``multiwindow`` (a recent window reacts to a shift within tens of samples;
    #: the full window would need hundreds).
    window: int = 100
    #: Newest samples judged by the short window of ``multiwindow`` (a burst).
    short_window: int = 10

    @property
    def short_windows(self) -> tuple[int, ...]:
        """The windows judged against the reference before them: the short one
        and one three times as long (a shift too small for the short one)."""
        return (self.short_window, 3 * self.short_window)

    #: Resolution margin as a fraction of the threshold: an alert resolves only once
    #: the observation is back past ``threshold * (1 - hysteresis)`` (upper bound).
    hysteresis: float = 0.05
    #: A series with no samples for this long is ``no_data``, not silently ok.
    missing_after: Seconds = 60.0
    #: Evaluation passes after ingest run at most this far apart: a series fed by
    #: many batches is judged once per ``coalesce``; a lone batch, or one with a
    #: value past a level, at once. 200 ms: at 20k lines/s over 100 series with
    #: levels, 50 ms cost 1.18x Etsy statsd's CPU per line, 200 ms 0.83x
    #: (bench/scaling.md), and only judgements no value crossed wait for it.
    coalesce: Seconds = 0.2


@dataclass(frozen=True, slots=True)
class MetricConfig:
    """One metric's bound, thresholds, hold time, window and optimizers.

    Thresholds are ordered by the bound: ``target < warning < critical`` for
    :attr:`Bound.UPPER`, ``target > warning > critical`` for :attr:`Bound.LOWER`.
    ``for_`` / ``for_samples`` (YAML ``for``: a duration or ``N samples``), ``window``
    and ``expire_after`` are ``None`` when the metric uses the evaluation/statistics
    default; ``optimizers`` name optimizer
    plugins (entry points) that may or may not be installed.
    """

    name: str
    bound: Bound
    unit: str | None = None
    description: str | None = None
    target: float | None = None
    warning: float | None = None
    critical: float | None = None
    for_: Seconds | None = None
    for_samples: int | None = None
    window: int | None = None
    optimizers: tuple[str, ...] = ()
    guard: bool = False
    group_by: str | None = None
    expire_after: Expiry | None = None

    def hold(self, evaluation: EvaluationConfig) -> tuple[float, int]:
        """``(seconds, samples)`` a condition must hold before it fires: the
        metric's ``for`` when it has one, else ``evaluation.for``."""
        if self.for_ is None and self.for_samples is None:
            return evaluation.for_, evaluation.for_samples
        return self.for_ or 0.0, self.for_samples or 0

    @property
    def has_levels(self) -> bool:
        """Whether a warning or critical level is set (else it never alerts)."""
        return self.warning is not None or self.critical is not None


@dataclass(frozen=True, slots=True)
class KnobConfig:
    """A parameter the optimizers may turn, delivered to applications.

    Either numeric (``min``/``max`` set, ``min <= initial <= max``, optional ``step``)
    or a choice (``choices`` set, ``initial`` one of them).  Numbers keep the type the
    YAML gave them, so ``initial: 16`` stays the integer ``16``.
    """

    name: str
    min: float | None
    max: float | None
    step: float | None
    initial: float | str
    choices: tuple[str | float, ...] | None = None


@dataclass(frozen=True, slots=True)
class OptimizerConfig:
    """How proposed optimizations are validated and spaced out."""

    validation_samples: int = 200
    significance: float = 0.05
    cooldown: Seconds = 60.0
    #: How long one plugin call (load, propose, apply, revert) may take; the call's
    #: deadline, which the plugin sees, comes a grace earlier (see perfwarden.deadline).
    plugin_timeout: Seconds = 5.0
    #: Consecutive failures (errors, timeouts, garbage) before a plugin is disabled.
    max_failures: int = 3
    #: ``active`` applies the chosen proposals; ``dry-run`` only logs the choice.
    mode: OptimizerMode = OptimizerMode.ACTIVE
    #: Actions allowed in any sliding hour, all metrics together.
    max_actions_per_hour: int = 12
    #: Longest wait for ``validation_samples`` before judging with what arrived.
    validation_timeout: Seconds = 300.0
    #: Actions validated at the same time, all metrics together (1: no confounding).
    concurrent_actions: int = 1
    #: Pseudo-outcomes per imported trial of ``learning import`` without ``--weight``.
    fleet_prior_weight: float = 1.0


@dataclass(frozen=True, slots=True)
class ProcessConfig:
    """A target process sampled with psutil.

    ``match`` has exactly one key: ``pid`` (int), ``pidfile``, ``name``, ``cmdline``
    (a regular expression searched in the joined command line) or ``unit`` (a systemd
    unit).
    """

    name: str
    match: Mapping[str, str | int]
    interval: Seconds = 1.0
    children: bool = False


@dataclass(frozen=True, slots=True)
class PluginConfig:
    """Per-plugin settings: ``enabled``, ``isolation``, ``memory_limit_mb`` and
    ``cpu_limit``, plus every other key as ``options``.

    Option values are frozen too: mappings become read-only mappings, lists tuples.
    """

    name: str
    enabled: bool = True
    options: Inline[Mapping[str, object]] = field(default_factory=_empty_mapping)
    #: Where the entry starts in the file (0: not from a file), for messages.
    line: int = field(default=0, compare=False)
    #: None: ``process`` for a third-party distribution, ``in-process`` for the
    #: built-ins (the ``perfwarden`` distribution's own).
    isolation: Isolation | None = None
    #: A process-isolated plugin's address-space limit in MiB (0: none).
    memory_limit_mb: int = 1024
    #: A process-isolated plugin's CPU seconds per call (0: none).
    cpu_limit: Seconds = 10.0


@dataclass(frozen=True, slots=True)
class ControlConfig:
    """Who besides the daemon's own uid and root may change things over control.sock,
    and the bounds on what any client may take of the daemon through it."""

    allow_uids: tuple[int, ...] = ()
    allow_groups: tuple[str, ...] = ()
    #: Open connections, all clients together (``knobs.watch`` streams count too).
    max_connections: int = 256
    #: Open connections of one uid, so one user cannot lock out the others.
    max_connections_per_uid: int = 64
    #: The longest request line; a longer one is answered ``too_large``.
    max_request_bytes: int = 65536
    #: The deepest nesting of arrays and objects in a request.
    max_json_depth: int = 32
    #: A reply the client has not taken within this long ends its connection.
    send_timeout: Seconds = 10.0


@dataclass(frozen=True, slots=True)
class SocketsConfig:
    """Access to the ingest sockets; ``group`` owns the socket directory and sockets."""

    metrics_access: MetricsAccess = MetricsAccess.PRIVATE
    group: str | None = None


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """Bounds on what the ingest sockets accept."""

    max_line_bytes: int = 8192
    #: The longest tag set (the bytes after ``|#``) a line may carry.
    max_tag_bytes: int = 1024
    #: The most tags a line may carry (each tag of each series costs memory).
    max_tags: int = 32
    max_connections: int = 512
    #: Stream connections of one uid, so one sender cannot lock out the others.
    max_connections_per_uid: int = 128
    #: A stream connection that sends nothing for this long is closed.
    idle_timeout: Seconds = 60.0
    max_datagram_bytes: int = 65536
    #: Distinct members one set series counts per interval.
    max_set_members: int = 65536
    #: Bytes of set members held per interval, all set series together (64 bytes of
    #: bookkeeping counted per member); members beyond are not counted.
    max_set_bytes: int = 16 << 20
    signed_gauges: SignedGauges = SignedGauges.ABSOLUTE
    #: ``|T`` stamps older than this are dropped as ``late_timestamp``: a sender's
    #: buffer replayed after an outage, judged as news, would raise stale alerts.
    max_timestamp_age: Seconds = 600.0
    #: ``|T`` stamps further ahead of the daemon's clock than this are dropped as
    #: ``future_timestamp`` (the sender's clock is wrong).
    max_timestamp_ahead: Seconds = 60.0


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """The optional HTTP listener (Prometheus ``/metrics``, the web dashboard).

    ``listen`` is the ``(host, port)`` to bind, or ``None`` (the default): no
    listener.  Port ``0`` picks a free port (logged as ``http.started``).
    """

    listen: HostPort | None = None
    #: The longest a client may take to send its request or to read the reply.
    timeout: Seconds = 10.0
    #: Requests served at the same time; more connections wait in the backlog.
    max_connections: int = 16
    #: Host header values accepted besides the listen address and ``localhost``
    #: (a DNS-rebinding page sends its own host name and is refused).
    allowed_hosts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """The daemon's log output.

    ``level`` applies at start and on every reload, unless ``perfwarden run
    --log-level`` pinned one.
    """

    level: LogLevel = LogLevel.INFO


@dataclass(frozen=True, slots=True)
class StateConfig:
    """How the daemon's state (``state.db`` in the state directory) is kept.

    ``checkpoint_interval`` is the most a ``kill -9`` can lose, in seconds of
    samples; ``0`` turns periodic checkpoints off (the state is still restored at
    start and written on a clean shutdown).
    """

    checkpoint_interval: Seconds = 2.0


@dataclass(frozen=True, slots=True)
class RecordingConfig:
    """The recording of accepted samples for ``perfwarden backtest`` (``recording:``).

    Off by default: it writes every accepted sample to disk for as long as
    ``max_age``, which is the operator's call (disk space in a small state
    directory, wear, values that may be sensitive). ``metrics`` empty: all.
    """

    enabled: bool = False
    metrics: tuple[str, ...] = ()
    #: 256 MiB: at 8 - 26 bits a sample (measured), 10 - 30 days of 100 series
    #: at one sample a second, so ``max_age`` is what usually bounds it.
    max_bytes: int = 256 << 20
    #: A week: what "last week" in a backtest needs.
    max_age: Seconds = 7 * 86400.0


@dataclass(frozen=True, slots=True)
class AlertmanagerConfig:
    """The Alertmanager route: where alerts are pushed (off without ``urls``).

    Each URL is an Alertmanager's base URL (``http://alertmanager:9093``); alerts
    go to its ``/api/v2/alerts``. ``resend_interval`` is how often firing alerts
    are sent again (Prometheus' ``--rules.alert.resend-delay``, 1 minute);
    ``labels`` are added to every alert; ``external_url`` is the base of each
    alert's ``generatorURL`` (default: the ``http.listen`` address).
    """

    urls: tuple[str, ...] = ()
    timeout: Seconds = 10.0
    resend_interval: Seconds = 60.0
    labels: Mapping[str, str] = field(default_factory=_empty_mapping)
    external_url: str | None = None


@dataclass(frozen=True, slots=True)
class Config:
    """A whole, validated configuration.

    ``source`` is the file it came from (``"<default>"`` for the packaged default,
    ``"<string>"`` when parsed from text) and ``sha256`` the hex digest of its bytes.
    ``metrics`` keeps the file's order.  ``Config()`` is the empty, valid
    configuration (no metrics, every section at its defaults).
    """

    version: int = 1
    statistics: StatisticsConfig = field(default_factory=StatisticsConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    metrics: Mapping[str, MetricConfig] = field(default_factory=_empty_mapping)
    knobs: Mapping[str, KnobConfig] = field(default_factory=_empty_mapping)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    processes: tuple[ProcessConfig, ...] = ()
    plugins: Mapping[str, PluginConfig] = field(default_factory=_empty_mapping)
    control: ControlConfig = field(default_factory=ControlConfig)
    sockets: SocketsConfig = field(default_factory=SocketsConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    state: StateConfig = field(default_factory=StateConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    alertmanager: AlertmanagerConfig = field(default_factory=AlertmanagerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    source: str = "<string>"
    sha256: str = ""

    def metric_window(self, name: str) -> int:
        """Return the window size for metric *name*: its override or the global one.

        Metrics that are not configured (series seen only on the wire) get the global
        ``statistics.window``.
        """
        metric = self.metrics.get(name)
        if metric is not None and metric.window is not None:
            return metric.window
        return self.statistics.window

    def metric_expire_after(self, name: str) -> float:
        """Return the idle time after which a series of metric *name* is forgotten.

        The metric's ``expire_after`` or ``statistics.expire_after``; ``0`` means
        never.  Metrics that are not configured get the global value.
        """
        metric = self.metrics.get(name)
        if metric is not None and metric.expire_after is not None:
            return metric.expire_after
        return self.statistics.expire_after


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One validation problem, printed as ``PATH:LINE: key.path: message``.

    ``line`` is 1-based; 0 means the problem is about the file as a whole (it could
    not be read).  ``key`` is the dotted path of the offending key; it is empty for
    problems that belong to no key (YAML syntax, an empty file), and is then left out.
    """

    path: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        """Return the problem as ``PATH:LINE: key.path: message``."""
        if not self.key:
            return f"{self.path}:{self.line}: {self.message}"
        return f"{self.path}:{self.line}: {self.key}: {self.message}"


class ConfigError(Exception):
    """A configuration was rejected; ``problems`` lists every reason, in file order."""

    problems: tuple[ConfigProblem, ...]

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__(self.problems)  # args stay picklable: ConfigError(problems)

    def __str__(self) -> str:
        """Return every problem, one per line."""
        return "\n".join(str(problem) for problem in self.problems)
