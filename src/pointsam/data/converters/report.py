"""What a conversion produced, skipped and dropped, for the user to read."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from pointsam.data.dataset import LabelledCloud


@dataclass
class ConversionReport:
    """Items (clouds, files) and masks left out of a conversion, each with the reason."""

    source: str = ""
    licence: str = ""
    converted: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    dropped_masks: list[tuple[str, str]] = field(default_factory=list)

    def skip(self, item: object, reason: str) -> None:
        """Record a whole item (file, scene, object) that was not converted."""
        self.skipped.append((str(item), reason))

    def drop_mask(self, item: object, reason: str) -> None:
        """Record one mask left out of a converted cloud."""
        self.dropped_masks.append((str(item), reason))

    def summary(self, limit: int = 20) -> str:
        """A few human-readable lines: counts, then the first `limit` skipped items and masks."""
        lines = [f"converted {self.converted} cloud(s); skipped {len(self.skipped)} item(s); "
                 f"dropped {len(self.dropped_masks)} mask(s)"]
        for title, rows in (("skipped", self.skipped), ("dropped mask", self.dropped_masks)):
            lines += [f"  {title}: {item}: {reason}" for item, reason in rows[:limit]]
            if len(rows) > limit:
                lines.append(f"  ... and {len(rows) - limit} more {title} entries")
        return "\n".join(lines)


class Conversion:
    """An iterator of :class:`LabelledCloud` with the :class:`ConversionReport` it fills as it goes."""

    def __init__(self, clouds: Iterator[LabelledCloud], report: ConversionReport) -> None:
        self._clouds = clouds
        self.report = report

    def __iter__(self) -> Iterator[LabelledCloud]:
        for cloud in self._clouds:
            self.report.converted += 1
            yield cloud
