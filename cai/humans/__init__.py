"""Human preference labels: import published label sets, label pairs on a local page, export them.

- :mod:`cai.humans.importers`: Anthropic HH-RLHF transcripts, TRL preference datasets and CSV files
  with a column mapping, as ``PreferencePair`` rows (``source="human"``).
- :mod:`cai.humans.store`: the SQLite label store behind the page (tasks, gold tasks, short claims,
  K raters' labels per task), safe for several labelers and for a server killed at any moment.
- :mod:`cai.humans.guidelines`: what each task is judged by (a principle's question, a guidelines
  file or a constitution), Markdown rendered safely.
- :mod:`cai.humans.server`: the labeling page (starlette + uvicorn, a hand-written page in
  ``static/``).
- :mod:`cai.humans.export`: the stored labels as ``PreferencePair`` rows (raters aggregated into
  a soft label).
- :mod:`cai.humans.stats`: per-rater counts, speed, gold accuracy and agreement (Krippendorff's alpha).

Imports: core, principles, data, backends, judge, sl and feedback.
"""

from cai.humans.export import export_labels
from cai.humans.importers import CsvMapping, import_labels

__all__ = ["CsvMapping", "export_labels", "import_labels"]
