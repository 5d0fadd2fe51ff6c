"""Stage: plan (prices): hourly VM list prices, from the dated snapshot shipped with capc or the user's own file.

A price file is JSON: {"currency", "region", "as_of", "source", "prices": {VM size: price per node-hour}}. Sizes
are matched without regard to case, as Azure does. A size the list lacks has no price (None), never 0.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from capc.errors import CapcError

SNAPSHOT = "prices.json"
REQUIRED = ("currency", "region", "as_of", "prices")
FORMAT_HINT = (
    'write JSON like {"currency": "USD", "region": "eastus", "as_of": "2026-11-30", "source": "...", '
    '"prices": {"Standard_DS3_v2": 0.293}}; capc\'s own list is capc/plan/prices.json'
)


@dataclass(frozen=True)
class PriceList:
    currency: str
    region: str
    as_of: str
    source: str
    prices: dict = field(repr=False)  # lower-case size -> price per hour

    def hourly(self, size: str | None) -> float | None:
        return self.prices.get(size.lower()) if size else None

    def caption(self) -> str:
        return f"list prices of {self.region} in {self.currency} per node-hour as of {self.as_of}"

    def to_dict(self) -> dict:
        return {"currency": self.currency, "region": self.region, "as_of": self.as_of, "source": self.source}


def load_prices(path: Path | None = None) -> PriceList:
    """The user's price file, or the snapshot shipped as package data."""
    where = str(path) if path else f"capc/plan/{SNAPSHOT}"
    try:
        text = Path(path).read_text(encoding="utf-8") if path else resources.files("capc.plan").joinpath(SNAPSHOT).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CapcError(f"the price file {where} does not exist.", FORMAT_HINT) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CapcError(f"cannot read the price file {where}: {exc}.", FORMAT_HINT) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CapcError(f"the price file {where} is not valid JSON (line {exc.lineno}: {exc.msg}).", FORMAT_HINT) from None
    if not isinstance(data, dict) or any(key not in data for key in REQUIRED):
        missing = [key for key in REQUIRED if not isinstance(data, dict) or key not in data]
        raise CapcError(f"the price file {where} lacks {', '.join(missing)}.", FORMAT_HINT)
    if not isinstance(data["prices"], dict):
        raise CapcError(f"the price file {where}: `prices` must map VM sizes to prices per hour.", FORMAT_HINT)
    prices = {}
    for size, price in data["prices"].items():
        if isinstance(price, bool) or not isinstance(price, (int, float)) or not math.isfinite(price) or price < 0:
            raise CapcError(f"the price file {where}: the price of {size} must be a number of at least 0, not {price!r}.", FORMAT_HINT)
        prices[str(size).lower()] = float(price)
    return PriceList(str(data["currency"]), str(data["region"]), str(data["as_of"]), str(data.get("source", "")), prices)
