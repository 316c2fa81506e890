"""The guard: prompt-injection detection, taint, output safety and secret redaction.

* detector   assess(text, where) -> GuardResult; assess_chunks(texts) for a batch; scan()
* patterns   the multilingual rules; semantic: MiniLM similarity to attacks.txt
* taint      Untrusted(text, source, flagged, reasons); taint_of(*values)
* output     safe_markdown(text): model, runbook and tool text made inert for st.markdown
* redaction  Redactor, REDACTED: secrets out of everything stored, printed or sent

Nothing here loads the model at import: the semantic layer builds on first use.
"""

from copilot.guard.detector import GuardResult, InjectionFlag, assess, assess_chunks, scan
from copilot.guard.output import safe_markdown
from copilot.guard.redaction import REDACTED, Redactor
from copilot.guard.taint import Untrusted, taint_of

__all__ = [
    "REDACTED",
    "GuardResult",
    "InjectionFlag",
    "Redactor",
    "Untrusted",
    "assess",
    "assess_chunks",
    "safe_markdown",
    "scan",
    "taint_of",
]
