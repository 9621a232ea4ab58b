"""What rnnkit's configurable objects share (initializers, losses, optimizers, learning-rate
schedules), as in Keras: ``get_config()`` (each class) and ``from_config``, a repr of the config,
and the ``{"class_name": ..., "config": {...}}`` form of ``serialize`` / ``deserialize``."""

from __future__ import annotations


class Configurable:
    """``from_config(config)`` = ``cls(**config)``; ``repr`` shows ``get_config()``."""

    def get_config(self) -> dict:  # pragma: no cover - overridden
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def serialized(obj) -> dict:
    """``{"class_name": <class name>, "config": obj.get_config()}``."""
    return {"class_name": type(obj).__name__, "config": obj.get_config()}


def deserialize_from(classes: dict, config, what: str):
    """The object a ``serialized`` dict describes, its class looked up in ``classes`` (name -> class);
    ValueError naming ``what`` and the accepted class names for anything else."""
    try:
        cls = classes[config["class_name"]]
    except (KeyError, TypeError):
        raise ValueError(f"{what} config must be {{'class_name': one of {sorted(classes)}, "
                         f"'config': {{...}}}}, got {config!r}") from None
    return cls.from_config(dict(config.get("config", {})))
