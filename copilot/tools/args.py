"""Argument models of the built-in tools: validation before any request, and JSON schemas.

Unknown fields are refused (`extra="forbid"`), so a misspelt argument fails here with a
message instead of reaching GitHub or Jira as a silently ignored field.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

REPO_PATTERN = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"
ISSUE_KEY_PATTERN = r"^[A-Z][A-Z0-9_]+-[0-9]+$"
# Paths and refs reach git's command line in the sandbox: no leading '-' (an option), no
# absolute paths, no '..' segments.
PATH_PATTERN = r"^(?![/-])(?!(.*/)?\.\.(/|$))[^\x00\n]+$"
REF_PATTERN = r"^((?!-)[A-Za-z0-9._/-]+)?$"


class Args(BaseModel):
    # python-re: the path and ref patterns need look-ahead, which the default engine lacks.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, regex_engine="python-re")


class JiraSearch(Args):
    query: str = Field("", max_length=500, description="free text to look for")
    jql: str = Field("", max_length=2000, description="a JQL query; wins over `query`")
    max_results: int = Field(10, ge=1, le=50)


class JiraGetIssue(Args):
    issue: str = Field(pattern=ISSUE_KEY_PATTERN, description="issue key, e.g. OPS-12")


class JiraCreateIssue(Args):
    summary: str = Field(min_length=1, max_length=255)
    description: str = Field("", max_length=30000)
    project: str = Field("", pattern=r"^([A-Z][A-Z0-9_]*)?$", description="default: JIRA_PROJECT")
    issue_type: str = Field("Task", min_length=1, max_length=50)
    labels: list[str] = Field(default_factory=list, max_length=20)


class JiraComment(Args):
    issue: str = Field(pattern=ISSUE_KEY_PATTERN)
    body: str = Field(min_length=1, max_length=30000)


class JiraTransition(Args):
    issue: str = Field(pattern=ISSUE_KEY_PATTERN)
    transition: str = Field(min_length=1, max_length=100, description="name or id, e.g. Done")


class GithubSearchIssues(Args):
    query: str = Field(min_length=1, max_length=256)
    repo: str = Field("", pattern=f"({REPO_PATTERN})|^$")


class GithubReadFile(Args):
    path: str = Field(min_length=1, max_length=500, pattern=PATH_PATTERN)
    repo: str = Field("", pattern=f"({REPO_PATTERN})|^$")
    ref: str = Field("", max_length=200, pattern=REF_PATTERN)


class GithubListCommits(Args):
    repo: str = Field("", pattern=f"({REPO_PATTERN})|^$")
    path: str = Field("", max_length=500, pattern=f"({PATH_PATTERN})|^$")
    limit: int = Field(10, ge=1, le=100)


class GithubCreateIssue(Args):
    title: str = Field(min_length=1, max_length=256)
    body: str = Field("", max_length=60000)
    repo: str = Field("", pattern=f"({REPO_PATTERN})|^$")


class GithubComment(Args):
    number: int = Field(ge=1)
    body: str = Field(min_length=1, max_length=60000)
    repo: str = Field("", pattern=f"({REPO_PATTERN})|^$")


class FileChange(Args):
    path: str = Field(min_length=1, max_length=500, pattern=PATH_PATTERN)
    content: str = Field(max_length=1_000_000)
    base_sha: str = Field(
        "", max_length=64, description="blob sha the diff was made against; '' = no check"
    )


class GithubCreatePullRequest(Args):
    title: str = Field(min_length=1, max_length=256)
    body: str = Field("", max_length=60000)
    repo: str = Field("", pattern=f"({REPO_PATTERN})|^$")
    path: str = Field(
        "", max_length=500, pattern=f"({PATH_PATTERN})|^$", description="prepare() finds it"
    )
    changes: list[FileChange] = Field(
        default_factory=list, max_length=20, description="filled by prepare(): new contents"
    )
    base: str = Field(
        "", max_length=200, pattern=REF_PATTERN, description="default: the default branch"
    )
