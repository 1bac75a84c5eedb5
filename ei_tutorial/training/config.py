"""Training configuration: a dataclass, YAML files, ``key=value`` overrides and their checks.

A config is read from a YAML mapping of keys to values (a file, or the name of one of
the configs shipped in ``ei_tutorial/configs``), then command-line style overrides
``key=value`` are applied, each value parsed as YAML (``widths=[100,100]``,
``amp=false``, ``neuron_kwargs.tau_mem=3``).

Three settings default to the published ones (Liu, Ding and Yu, arXiv:2509.23253, and
their released configs) when left unset (``null``): the learning rate (E-I and plain
0.002 for the MLP, VGG-8 and VGG-11 and 0.001 for deeper networks; batch norm 0.1), the
weight decay (E-I and plain 5e-4; batch norm 1e-4) and the warm-up (E-I and plain 10
epochs for the MLP, VGG-8 and VGG-11 and 30 for deeper networks; batch norm none).
Variants registered by users get the E-I settings. ``lr``, ``weight_decay`` and
``warmup_epochs`` may also map variant names to values (a missing or null entry takes
the published default), so one file serves a model and its batch-norm and plain twins.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import yaml

from ei_tutorial.data import DATASETS
from ei_tutorial.models import available_architectures, available_neurons, available_variants

SHALLOW_ARCHITECTURES = ("mlp", "vgg8", "vgg11")

# Keys that may differ between a run and its resumption: they change how the run is
# executed or shown, not the numbers it produces.
RUNTIME_KEYS = ("progress", "num_workers", "device", "compile", "eval_batch_size", "log_every", "out_dir")


def _meta(help_text: str, unit: str = "") -> dict:
    return {"help": help_text, "unit": unit}


@dataclass
class TrainConfig:
    """Everything that defines a training run; see ``python -m ei_tutorial.train --help``.

    Raises:
        ValueError: On construction, if a value has the wrong type or is out of range,
            or names an unknown dataset, architecture, variant or neuron model.
    """

    name: Optional[str] = field(
        default=None,
        metadata=_meta("run name; outputs go to out_dir/name; null = <config file>_<variant>, else <dataset>_<arch>_<variant>"),
    )
    out_dir: str = field(default="runs", metadata=_meta("folder that holds the run folders", "path"))
    dataset: str = field(default="mnist", metadata=_meta(f"one of {', '.join(DATASETS)}"))
    augment: bool = field(default=False, metadata=_meta("CIFAR augmentation (crop, flip, Cutout)"))
    arch: str = field(default="mlp", metadata=_meta("mlp, vgg8, vgg11, vgg16, vgg19 or resnet18"))
    variant: str = field(default="ei", metadata=_meta("ei, bn, plain, or a registered variant"))
    widths: Optional[list] = field(
        default=None, metadata=_meta("MLP hidden widths, VGG conv channels or ResNet stage channels; null = standard")
    )
    neuron: str = field(default="lif", metadata=_meta("registered neuron model"))
    neuron_kwargs: dict = field(default_factory=dict, metadata=_meta("keyword arguments of every neuron"))
    layer_kwargs: dict = field(default_factory=dict, metadata=_meta("keyword arguments of every layer"))
    time_steps: int = field(default=4, metadata=_meta("T, steps each image is shown for", "time steps"))
    epochs: int = field(default=300, metadata=_meta("training epochs", "epochs"))
    batch_size: int = field(default=128, metadata=_meta("images per step, summed over processes", "images"))
    eval_batch_size: int = field(default=512, metadata=_meta("images per held-out batch", "images"))
    lr: Union[float, dict, None] = field(
        default=None, metadata=_meta("peak learning rate, or {variant: lr}; null = published")
    )
    momentum: float = field(default=0.9, metadata=_meta("SGD momentum"))
    weight_decay: Union[float, dict, None] = field(
        default=None, metadata=_meta("L2 penalty on weights and gains, or {variant: value}; null = published")
    )
    warmup_epochs: Union[float, dict, None] = field(
        default=None, metadata=_meta("linear warm-up length, or {variant: length}; null = published", "epochs")
    )
    warmup_start_factor: float = field(
        default=0.01, metadata=_meta("learning rate at the first step as a fraction of lr")
    )
    min_lr: float = field(default=0.0, metadata=_meta("learning rate at the end of the cosine decay"))
    grad_clip_norm: Optional[float] = field(
        default=None, metadata=_meta("clip the global gradient norm to this value; null = no clipping")
    )
    train_subset: Optional[int] = field(
        default=None, metadata=_meta("train on the first N training images only; null = all", "images")
    )
    heldout_subset: Optional[int] = field(
        default=None, metadata=_meta("evaluate on the first N held-out images only; null = all", "images")
    )
    max_steps_per_epoch: Optional[int] = field(
        default=None, metadata=_meta("end each epoch after this many steps; null = full epochs", "steps")
    )
    init_batch_size: int = field(
        default=256, metadata=_meta("training images used to initialise E-I layers (E-I Init)", "images")
    )
    seed: int = field(default=0, metadata=_meta("seed of every random number generator"))
    device: str = field(default="auto", metadata=_meta("auto, cpu, cuda, cuda:N or mps"))
    amp: bool = field(default=True, metadata=_meta("mixed precision on CUDA (bfloat16, else float16)"))
    compile: bool = field(default=False, metadata=_meta("torch.compile the model"))
    num_workers: int = field(default=0, metadata=_meta("data-loader worker processes", "processes"))
    progress: bool = field(default=True, metadata=_meta("show tqdm progress bars"))
    log_every: int = field(default=20, metadata=_meta("refresh the progress bar every N steps", "steps"))

    def __post_init__(self) -> None:
        if self.name is None:
            self.name = f"{self.dataset}_{self.arch}_{self.variant}"
        validate_config(self)

    # -- published defaults ------------------------------------------------------------

    def resolved_lr(self) -> float:
        """Return the peak learning rate of this run's variant (published default if unset)."""
        return _resolve(self.lr, self.variant, _published_lr(self.arch, self.variant))

    def resolved_weight_decay(self) -> float:
        """Return the weight decay of this run's variant (published default if unset)."""
        return _resolve(self.weight_decay, self.variant, _published_weight_decay(self.variant))

    def resolved_warmup_epochs(self) -> float:
        """Return the warm-up length in epochs (published default if unset)."""
        return _resolve(
            self.warmup_epochs, self.variant, _published_warmup(self.arch, self.variant)
        )

    def run_dir(self) -> Path:
        """Return the folder of this run's checkpoints and metrics, ``out_dir/name``."""
        return Path(self.out_dir) / self.name

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a plain dict of YAML-compatible values."""
        return dataclasses.asdict(self)

    def model_spec(self) -> dict[str, Any]:
        """Return the settings that determine the model's parameters and their shapes."""
        return {key: getattr(self, key) for key in _MODEL_KEYS}


_MODEL_KEYS = ("dataset", "arch", "variant", "widths", "neuron", "neuron_kwargs", "layer_kwargs")


def _published_lr(arch: str, variant: str) -> float:
    if variant == "bn":
        return 0.1
    return 0.002 if arch in SHALLOW_ARCHITECTURES else 0.001


def _published_weight_decay(variant: str) -> float:
    return 1e-4 if variant == "bn" else 5e-4


def _published_warmup(arch: str, variant: str) -> float:
    if variant == "bn":
        return 0.0
    return 10.0 if arch in SHALLOW_ARCHITECTURES else 30.0


def _resolve(value: Union[float, dict, None], variant: str, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, Mapping):
        chosen = value.get(variant)
        return default if chosen is None else float(chosen)
    return float(value)


# -- validation ------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _fail(key: str, value: object, expected: str) -> None:
    raise ValueError(f"invalid {key}={value!r}: expected {expected}")


def _check_choice(key: str, value: object, choices: Sequence[str]) -> None:
    if value not in choices:
        _fail(key, value, f"one of {', '.join(choices)}")


def _check_number_or_map(key: str, value: object, lower: float, allow_zero: bool) -> None:
    values = value.values() if isinstance(value, Mapping) else [value]
    for entry in values:
        if entry is None:
            continue
        ok = _is_number(entry) and (entry > lower or (allow_zero and entry == lower))
        if not ok:
            bound = f">= {lower}" if allow_zero else f"> {lower}"
            _fail(key, value, f"a number {bound}, null, or a mapping from variant names to such numbers")
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(available_variants()))
        if unknown:
            _fail(key, value, f"variant names among {', '.join(available_variants())} as keys, not {unknown}")


def validate_config(config: TrainConfig) -> None:
    """Raise ``ValueError`` naming the first invalid value of ``config`` and what was expected."""
    for key in ("name", "out_dir", "dataset", "arch", "variant", "neuron", "device"):
        value = getattr(config, key)
        if not isinstance(value, str) or not value:
            _fail(key, value, "a non-empty string")
    if "/" in config.name or config.name in (".", ".."):
        _fail("name", config.name, "a folder name without '/'")
    _check_choice("dataset", config.dataset, DATASETS)
    _check_choice("arch", config.arch, available_architectures())
    _check_choice("variant", config.variant, available_variants())
    _check_choice("neuron", config.neuron, available_neurons())

    positive_ints = ("time_steps", "epochs", "batch_size", "eval_batch_size", "init_batch_size", "log_every")
    for key in positive_ints:
        value = getattr(config, key)
        if not _is_int(value) or value < 1:
            hint = " (the number of time steps T)" if key == "time_steps" else ""
            _fail(key, value, f"an integer >= 1{hint}")
    for key in ("train_subset", "heldout_subset", "max_steps_per_epoch"):
        value = getattr(config, key)
        if value is not None and (not _is_int(value) or value < 1):
            _fail(key, value, "an integer >= 1 or null")
    if not _is_int(config.seed) or config.seed < 0:
        _fail("seed", config.seed, "an integer >= 0")
    if not _is_int(config.num_workers) or config.num_workers < 0:
        _fail("num_workers", config.num_workers, "an integer >= 0")
    for key in ("augment", "amp", "compile", "progress"):
        if not isinstance(getattr(config, key), bool):
            _fail(key, getattr(config, key), "true or false")

    if config.widths is not None:
        if not isinstance(config.widths, (list, tuple)) or not all(_is_int(w) and w >= 1 for w in config.widths):
            _fail("widths", config.widths, "a list of integers >= 1, or null")
        config.widths = list(config.widths)
    for key in ("neuron_kwargs", "layer_kwargs"):
        value = getattr(config, key)
        if value is None:
            setattr(config, key, {})
        elif not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            _fail(key, value, "a mapping from argument names to values")
        else:
            setattr(config, key, dict(value))

    _check_number_or_map("lr", config.lr, 0.0, allow_zero=False)
    _check_number_or_map("weight_decay", config.weight_decay, 0.0, allow_zero=True)
    if not _is_number(config.momentum) or not 0 <= config.momentum < 1:
        _fail("momentum", config.momentum, "a number in [0, 1)")
    _check_number_or_map("warmup_epochs", config.warmup_epochs, 0.0, allow_zero=True)
    if not _is_number(config.warmup_start_factor) or not 0 < config.warmup_start_factor <= 1:
        _fail("warmup_start_factor", config.warmup_start_factor, "a number in (0, 1]")
    if not _is_number(config.min_lr) or config.min_lr < 0:
        _fail("min_lr", config.min_lr, "a number >= 0")
    if config.grad_clip_norm is not None and (not _is_number(config.grad_clip_norm) or config.grad_clip_norm <= 0):
        _fail("grad_clip_norm", config.grad_clip_norm, "a number > 0, or null")
    if not (config.device in ("auto", "cpu", "cuda", "mps") or config.device.startswith("cuda:")):
        _fail("device", config.device, "auto, cpu, cuda, cuda:N or mps")


# -- reading ---------------------------------------------------------------------------------


def config_keys() -> tuple[str, ...]:
    """Return every valid config key, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(TrainConfig))


def shipped_configs() -> tuple[str, ...]:
    """Return the names of the YAML configs shipped in ``ei_tutorial/configs``, sorted."""
    folder = resources.files("ei_tutorial") / "configs"
    return tuple(sorted(entry.name[: -len(".yaml")] for entry in folder.iterdir() if entry.name.endswith(".yaml")))


def _check_keys(keys: Iterable[str], source: str) -> None:
    unknown = sorted(set(keys) - set(config_keys()))
    if unknown:
        raise ValueError(
            f"{source}: unknown config key(s) {', '.join(unknown)}; valid keys are: {', '.join(config_keys())}"
        )


def config_from_dict(values: Mapping[str, Any], source: str = "config") -> TrainConfig:
    """Build a :class:`TrainConfig` from a mapping, rejecting unknown keys.

    Args:
        values: Keys and values; missing keys keep their defaults.
        source: Where the values come from, for error messages.

    Raises:
        ValueError: On an unknown key (the message lists the valid ones) or an invalid value.
    """
    _check_keys(values, source)
    try:
        return TrainConfig(**values)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None


def _parse_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown line"
        problem = getattr(error, "problem", None) or str(error)
        raise ValueError(f"{source}: malformed YAML at {where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a mapping of config keys to values, got {type(data).__name__}")
    return data


def resolve_config_path(source: Union[str, Path]) -> Path:
    """Return the file of a config given as a path or as the name of a shipped config.

    Raises:
        FileNotFoundError: If ``source`` is neither an existing file nor a shipped
            config name; the message lists the shipped names.
    """
    path = Path(source)
    if path.is_file():
        return path
    name = path.name[: -len(".yaml")] if path.name.endswith(".yaml") else path.name
    if str(source) == name or str(source) == f"{name}.yaml":
        shipped = resources.files("ei_tutorial") / "configs" / f"{name}.yaml"
        if shipped.is_file():
            return Path(str(shipped))
    raise FileNotFoundError(
        f"config {str(source)!r} is neither a file nor a shipped config; shipped configs: "
        f"{', '.join(shipped_configs())}"
    )


def parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings, each value as YAML, into a nested mapping.

    ``neuron_kwargs.tau_mem=3`` sets one entry of a mapping-valued key.

    Raises:
        ValueError: On a string without ``=``, an unknown key or a malformed value.
    """
    parsed: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"override {item!r} is not of the form key=value")
        value = _parse_value(raw, item)
        top, dot, sub = key.partition(".")
        _check_keys([top], "override")
        if dot:
            parsed.setdefault(top, {})
            if not isinstance(parsed[top], dict):
                raise ValueError(f"override {item!r} sets an entry of {top}, which was given as a whole before")
            parsed[top][sub] = value
        else:
            parsed[key] = value
    return parsed


def _parse_value(raw: str, item: str) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as error:
        raise ValueError(f"override {item!r}: malformed value: {getattr(error, 'problem', error)}") from None


def load_config(source: Union[str, Path, None] = None, overrides: Iterable[str] = ()) -> TrainConfig:
    """Read a config from a YAML file or shipped name and apply ``key=value`` overrides.

    Args:
        source: A YAML file, the name of a shipped config (see :func:`shipped_configs`),
            or None for the defaults. Without a ``name`` key the run is named
            ``<file name>_<variant>``, so a model and its twins get separate folders.
        overrides: ``key=value`` strings applied after the file; a dotted key such as
            ``layer_kwargs.ei_ratio=2`` updates one entry of a mapping.

    Returns:
        The validated config.

    Raises:
        FileNotFoundError: If ``source`` is not found.
        ValueError: On malformed YAML (the message names the file and line), an unknown
            key (the message lists the valid keys) or an invalid value.
    """
    values: dict[str, Any] = {}
    label = "defaults"
    if source is not None:
        path = resolve_config_path(source)
        label = str(path)
        values = _parse_yaml(path.read_text(encoding="utf-8"), label)
        _check_keys(values, label)
    for key, value in parse_overrides(overrides).items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    if source is not None and values.get("name") is None:
        values["name"] = f"{path.stem}_{values.get('variant', TrainConfig.variant)}"
    return config_from_dict(values, label)


def describe_keys() -> str:
    """Return one line per config key with its default, meaning and unit, for ``--help``."""
    lines = []
    for f in dataclasses.fields(TrainConfig):
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        default_text = yaml.safe_dump(default, default_flow_style=True).strip().removesuffix("...").strip()
        unit = f" [{f.metadata['unit']}]" if f.metadata.get("unit") else ""
        lines.append(f"  {f.name:<20} {default_text:<6} {f.metadata.get('help', '')}{unit}")
    return "\n".join(lines)
