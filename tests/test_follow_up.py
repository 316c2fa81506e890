"""Follow-up detection and the query it leads to: a message is searched with the previous
task only when it refers back to it."""

import pytest

from copilot.retriever import follow_up_query, is_follow_up

FOLLOW_UPS = [
    "and the replicas?",
    "what about it",
    "do that for staging too",
    "what about staging",
    "same for orders",
    "and what about the payments database?",
    "restart it",
    "is it safe to roll back?",
    "why is it still failing after the restart",
    "restart those pods",
    "can you open a ticket for that",
    "show me the commands again",
    "now do the same in staging",
    "and?",
    "what about the replicas in staging",
    "what should I check first?",
    "what next?",
    "what do I do after that",
    "who do I escalate to?",  # asks for a part of a runbook, names no subject
    "who should be paged",
    "how do I verify?",
    "how do I roll back",
]
NEW_SUBJECTS = [
    "our postgres has too many connections",
    "Pods in checkout are OOMKilled; raise the limit and open a ticket",
    "p99 latency doubled after the deploy",
    "disk full on the postgres volume",
    "how do I rotate the database password",
    "What is the capital of France?",
    "the service that crashes every night",  # "that" as a relative pronoun
    "what does this alert mean",  # "this" as a determiner
    "there is a disk full alert on db-3",
    "It is the checkout service that keeps crashing with exit code 137 every few minutes",
    "and now redis is evicting keys on the sessions cluster and users get logged out",
    "also our postgres has too many connections",
    "thanks",
    "",
    "check the disk on db-3 first",
]


@pytest.mark.parametrize("text", FOLLOW_UPS)
def test_messages_that_refer_back_are_follow_ups(text):
    assert is_follow_up(text)


@pytest.mark.parametrize("text", NEW_SUBJECTS)
def test_messages_with_a_subject_of_their_own_are_not(text):
    assert not is_follow_up(text)


@pytest.mark.parametrize(
    ("history", "text", "query"),
    [
        ([], "and the replicas?", "and the replicas?"),
        (
            ["pods OOMKilled in checkout"],
            "and the replicas?",
            "pods OOMKilled in checkout\nand the replicas?",
        ),
        (
            ["pods OOMKilled in checkout"],
            "our postgres has too many connections",
            "our postgres has too many connections",
        ),
        # a chain of follow-ups keeps the task they all hang on, not the task before it
        (
            ["disk full on db-3", "pods OOMKilled in checkout", "and the replicas?"],
            "restart them",
            "pods OOMKilled in checkout\nand the replicas?\nrestart them",
        ),
    ],
)
def test_follow_up_query_adds_the_previous_task_only_to_follow_ups(history, text, query):
    assert follow_up_query(history, text) == query
