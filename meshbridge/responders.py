"""Who may answer a message we sent: its recipient, to the mailbox it left from, on an answer workflow.

MESH authenticates one fact about what we receive: the sending mailbox (``mex-From``, stored as
the inbound row's ``peer``). Everything else in an answer (ids, codes, keys) is the peer's word.
An ITK3 response or a domain acknowledgement is therefore applied only when it comes from the
mailbox the original was sent to, arrives on the mailbox the original was sent from, and travels
on a workflow the original's route receives answers on. Anything else is an orphan.
"""

from __future__ import annotations

from collections.abc import Collection

from .store import StoredMessage


def same_mailbox(a: str | None, b: str | None) -> bool:
    """MESH mailbox ids compare case-insensitively; an unknown mailbox matches nothing."""
    return bool(a and b and a.strip().upper() == b.strip().upper())


def misfit(answer: StoredMessage, original: StoredMessage, workflows: Collection[str], answers: str) -> str | None:
    """Why ``answer`` may not answer ``original``, or None when it may.

    :param workflows: the workflow ids the original's route receives answers on.
    :param answers: how the answer names the original, for the reason (e.g. its MessageHeader.id).
    """
    if not same_mailbox(answer.peer, original.peer):
        return f"answers {answers}, which was sent to {original.peer}, not to {answer.peer}"
    if not same_mailbox(answer.mailbox, original.mailbox):
        return f"answers {answers}, which was sent from {original.mailbox}, but arrived on {answer.mailbox}"
    if answer.workflow_id not in workflows:
        expected = ", ".join(sorted(workflows)) or "none"
        return f"answers {answers} on workflow {answer.workflow_id}, but answers to it come on {expected}"
    return None
