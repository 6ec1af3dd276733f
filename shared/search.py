"""Full-text search over a user's own conversation titles and messages, in the database.

The index objects come from migration 5d2b8e7c4a13: on SQLite the external-content FTS5 tables
`messages_fts` and `conversations_fts` (kept by triggers; replies still streaming are not in
them), on PostgreSQL partial GIN indexes over `to_tsvector('simple', words_of(content)) WHERE
status <> 'streaming'` and `to_tsvector('simple', words_of(coalesce(title, '')))`. The
PostgreSQL queries below use exactly those expressions and that predicate, or the planner could
not use the indexes.

The query text is never handed to either engine's query language: it is cut into words here
(letters and digits, as FTS5's unicode61 tokenizer cuts them), each word is quoted for FTS5 and
the words are given to `plainto_tsquery` on PostgreSQL, so `"`, `*`, `NEAR(`, `-` or `:` are
only ever text. All words must match (AND).

Snippets are marked by the database itself (`snippet()`/`highlight()`, `ts_headline`) with two
control characters, then split here into segments `{text, match}`: clients render them as
text, never as HTML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from sqlalchemy import DateTime, Float, Integer, String, TextualSelect, text
from sqlmodel import Session

MAX_TERMS = 16  # words of a query that count; the rest are ignored
MAX_TERM_CHARS = 64  # a longer "word" is no word anyone types; cut so the query stays small
SNIPPET_TOKENS = 16  # FTS5 snippet() length in tokens (at most 64)
START, STOP = "\x02", "\x03"  # match markers: control characters no reply is made of
ZWSP = "\u200b"  # splits words for PostgreSQL's parser (words_of); never shown
ELLIPSIS = "…"

# Letters and digits, as FTS5's unicode61 separates tokens (underscore and punctuation split).
_WORD = re.compile(r"[^\W_]+")
_MARKERS = re.compile(f"([{START}{STOP}])")


@dataclass(frozen=True)
class Segment:
    text: str
    match: bool


@dataclass(frozen=True)
class SearchHit:
    conversation_id: int
    project_name: str
    conversation_title: str | None
    message_id: int | None  # None when the conversation's title matched
    role: str | None  # None for a title
    snippet: list[Segment]
    rank: float  # higher is better
    created_at: datetime


def terms_of(query: str) -> list[str]:
    """The words of a query that can be searched; empty when there is nothing to search."""
    words = (w[:MAX_TERM_CHARS] for w in _WORD.findall(query))
    return list(dict.fromkeys(w.lower() for w in words))[:MAX_TERMS]


def fts5_query(terms: list[str]) -> str:
    """An FTS5 MATCH expression in which every term is a quoted string, nothing else."""
    return " ".join('"' + t.replace('"', '""') + '"' for t in terms)


def segments(marked: str) -> list[Segment]:
    """Split text marked with START/STOP into segments; a stray marker only ends a run."""
    out: list[Segment] = []
    match = False
    for part in _MARKERS.split(marked.replace(ZWSP, "")):
        if part == START:
            match = True
        elif part == STOP:
            match = False
        elif part:
            if out and out[-1].match == match:
                out[-1] = Segment(out[-1].text + part, match)
            else:
                out.append(Segment(part, match))
    return out


def search(
    session: Session,
    *,
    user_id: int,
    query: str,
    project_name: str | None = None,
    limit: int = 20,
) -> list[SearchHit]:
    """The user's best matches, titles and messages together, best first.

    The greeting (an assistant message without a turn) and replies still streaming are never
    results; only conversations of `user_id` (and of `project_name`, when given) are searched.
    """
    terms = terms_of(query)
    if not terms or limit < 1:
        return []
    sqlite = session.get_bind().dialect.name == "sqlite"
    params: dict[str, object] = {
        "uid": user_id,
        "limit": limit,
        "q": fts5_query(terms) if sqlite else " ".join(terms),
    }
    if project_name is not None:
        params["project"] = project_name
    hits: list[SearchHit] = []
    for is_title in (False, True):
        query_text = statement(sqlite=sqlite, titles=is_title, one_project=project_name is not None)
        for row in session.connection().execute(query_text, params).mappings():
            hits.append(
                SearchHit(
                    conversation_id=row["conversation_id"],
                    project_name=row["project_name"],
                    conversation_title=row["title"],
                    message_id=None if is_title else row["message_id"],
                    role=None if is_title else row["role"],
                    snippet=segments(row["snippet"] or ""),
                    rank=float(row["rank"]),
                    created_at=row["created_at"],
                )
            )
    # Two lists of at most `limit` rows each, merged: never more than that leaves the database.
    hits.sort(key=lambda h: (h.rank, h.created_at, h.message_id or 0), reverse=True)
    return hits[:limit]


def sql_for(*, sqlite: bool, titles: bool, one_project: bool) -> str:
    """The query for titles or messages on one engine, with the project filter only when asked
    (a `:project IS NULL OR ...` would leave PostgreSQL's generic plans guessing)."""
    owned = "c.user_id = :uid" + (" AND c.project_name = :project" if one_project else "")
    if sqlite:
        template = SQLITE_TITLES if titles else SQLITE_MESSAGES
    else:
        template = POSTGRES_TITLES if titles else POSTGRES_MESSAGES
    return template.format(owned=owned)


@lru_cache
def statement(*, sqlite: bool, titles: bool, one_project: bool) -> TextualSelect:
    return text(sql_for(sqlite=sqlite, titles=titles, one_project=one_project)).columns(
        conversation_id=Integer(),
        project_name=String(),
        title=String(),
        message_id=Integer(),
        role=String(),
        snippet=String(),
        rank=Float(),
        created_at=DateTime(),
    )


# Not the greeting: the only assistant message stored without a turn.
_NOT_GREETING = "(m.role <> 'assistant' OR m.turn_id IS NOT NULL)"

# Templates: {owned} is the ownership filter; everything else is fixed text.
SQLITE_MESSAGES = f"""
SELECT m.conversation_id, c.project_name, c.title, m.id AS message_id, m.role,
       snippet(messages_fts, 0, char(2), char(3), '{ELLIPSIS}', {SNIPPET_TOKENS}) AS snippet,
       -bm25(messages_fts) AS rank, m.created_at
FROM messages_fts
JOIN messages AS m ON m.id = messages_fts.rowid
JOIN conversations AS c ON c.id = m.conversation_id
WHERE messages_fts MATCH :q AND m.status <> 'streaming' AND {_NOT_GREETING} AND {{owned}}
ORDER BY rank DESC, m.id DESC
LIMIT :limit
"""

SQLITE_TITLES = """
SELECT c.id AS conversation_id, c.project_name, c.title, NULL AS message_id, NULL AS role,
       highlight(conversations_fts, 0, char(2), char(3)) AS snippet,
       -bm25(conversations_fts) AS rank, c.created_at
FROM conversations_fts
JOIN conversations AS c ON c.id = conversations_fts.rowid
WHERE conversations_fts MATCH :q AND {owned}
ORDER BY rank DESC, c.id DESC
LIMIT :limit
"""

# ts_headline re-reads the whole text, so it runs only on the rows kept by LIMIT. The markers
# are passed as chr() so the SQL text itself holds no control characters.
_HEADLINE = (
    "'StartSel=' || chr(2) || ', StopSel=' || chr(3) || ', MaxWords=20, MinWords=6, "
    f'ShortWord=0, MaxFragments=2, FragmentDelimiter=" {ELLIPSIS} "\''
)
_TITLE_HEADLINE = "'StartSel=' || chr(2) || ', StopSel=' || chr(3) || ', HighlightAll=true'"


def words_of(expr: str) -> str:
    """PostgreSQL's parser keeps `src/app.py` or `foo_bar.txt` as one token (a file name), so
    `app` would not find it while SQLite's tokenizer splits it. A zero-width space after every
    character that is neither a letter, a digit nor a space splits them alike; the snippet
    drops it again (`segments`). The migration indexes exactly this expression."""
    return rf"regexp_replace({expr}, '([^\w\s]|_)', '\1' || chr({ord(ZWSP)}), 'g')"


# The indexed expressions of ix_messages_content_tsv / ix_conversations_title_tsv, verbatim.
_CONTENT_TSV = f"to_tsvector('simple', {words_of('m.content')})"
_TITLE = "coalesce(c.title, '')"
_TITLE_TSV = f"to_tsvector('simple', {words_of(_TITLE)})"
_TSQUERY = "plainto_tsquery('simple', :q)"

POSTGRES_MESSAGES = f"""
SELECT hit.conversation_id, hit.project_name, hit.title, hit.message_id, hit.role,
       ts_headline('simple', {words_of("hit.content")}, {_TSQUERY}, {_HEADLINE}) AS snippet,
       hit.rank, hit.created_at
FROM (
    SELECT m.conversation_id, c.project_name, c.title, m.id AS message_id, m.role, m.content,
           ts_rank({_CONTENT_TSV}, {_TSQUERY}) AS rank, m.created_at
    FROM messages AS m
    JOIN conversations AS c ON c.id = m.conversation_id
    WHERE {_CONTENT_TSV} @@ {_TSQUERY} AND m.status <> 'streaming'
      AND {_NOT_GREETING} AND {{owned}}
    ORDER BY rank DESC, m.id DESC
    LIMIT :limit
) AS hit
ORDER BY hit.rank DESC, hit.message_id DESC
"""

POSTGRES_TITLES = f"""
SELECT c.id AS conversation_id, c.project_name, c.title, NULL::bigint AS message_id,
       NULL::text AS role,
       ts_headline('simple', {words_of(_TITLE)}, {_TSQUERY}, {_TITLE_HEADLINE})
           AS snippet,
       ts_rank({_TITLE_TSV}, {_TSQUERY}) AS rank, c.created_at
FROM conversations AS c
WHERE {_TITLE_TSV} @@ {_TSQUERY} AND {{owned}}
ORDER BY rank DESC, c.id DESC
LIMIT :limit
"""
