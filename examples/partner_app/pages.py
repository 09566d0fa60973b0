"""StreamCo's pages: plain HTML, every value escaped."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape


@dataclass(frozen=True)
class Show:
    slug: str
    title: str
    episode: str
    blurb: str


CATALOGUE = {
    s.slug: s
    for s in (
        Show(
            "night-train",
            "Night Train",
            "Season 2, episode 3",
            "A slow thriller on a sleeper train across the Alps.",
        ),
        Show(
            "lighthouse-keeper",
            "The Lighthouse Keeper",
            "Episode 1",
            "Forty days alone on a rock in the North Sea.",
        ),
        Show(
            "salt-and-pepper",
            "Salt & Pepper",
            "Season 5, episode 8",
            "Two grandmothers, one kitchen, no recipes.",
        ),
    )
}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; background: #14141c; color: #eee; }
header { padding: 14px 28px; background: #e50963; font-weight: 700; font-size: 20px; }
main { display: flex; gap: 32px; padding: 28px; max-width: 980px; }
.player { flex: 2; }
.screen { background: #000; aspect-ratio: 16/9; border-radius: 8px; display: flex;
  align-items: center; justify-content: center; color: #777; font-size: 48px; }
aside { flex: 1; }
aside a { color: #eee; display: block; padding: 6px 0; }
h1 { margin: 18px 0 4px; } .episode { color: #aaa; margin: 0 0 12px; }
.share { margin-top: 20px; padding: 16px; border: 1px solid #333; border-radius: 8px; }
button, .button { background: #e50963; color: #fff; border: 0; border-radius: 6px;
  padding: 10px 18px; font-size: 16px; cursor: pointer; text-decoration: none;
  display: inline-block; }
button.quiet { background: #333; font-size: 13px; padding: 6px 10px; }
.notice { background: #1f3d2a; border-radius: 6px; padding: 10px 14px; margin: 12px 0; }
.problem { background: #4a1f24; border-radius: 6px; padding: 10px 14px; margin: 12px 0; }
.small { color: #aaa; font-size: 13px; }
"""


def layout(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)} · StreamCo</title><style>{_STYLE}</style></head>"
        f"<body><header>StreamCo</header>{body}</body></html>"
    )


def watch(
    show: Show,
    *,
    connected_as: str | None,
    csrf: str,
    notice: str | None = None,
    problem: str | None = None,
) -> str:
    up_next = "".join(
        f'<a href="/watch/{escape(s.slug)}">{escape(s.title)}</a>'
        for s in CATALOGUE.values()
        if s.slug != show.slug
    )
    if connected_as is None:
        share = (
            "<p>Tell friends what you are watching, through Clearpost. Your messages stay "
            "end-to-end encrypted: StreamCo never sees them, or who you send to.</p>"
            f'<a class="button" id="connect" href="/connect?next=/watch/{escape(show.slug)}">'
            "Connect Clearpost</a>"
        )
    else:
        share = (
            f'<p>Connected to Clearpost as <strong id="clearpost-user">'
            f"{escape(connected_as)}</strong>.</p>"
            '<form method="post" action="/share">'
            f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
            f'<input type="hidden" name="show" value="{escape(show.slug)}">'
            '<button id="share" type="submit">Share what I\'m watching</button></form>'
            '<p class="small">It goes to your own Clearpost app; you choose who gets it '
            "there. StreamCo learns how many people you sent it to, nothing more.</p>"
            '<form method="post" action="/disconnect">'
            f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
            '<button class="quiet" id="disconnect" type="submit">Disconnect Clearpost</button>'
            "</form>"
        )
    flash = f'<p class="notice" id="notice">{escape(notice)}</p>' if notice else ""
    flash += f'<p class="problem" id="problem">{escape(problem)}</p>' if problem else ""
    body = (
        '<main><div class="player"><div class="screen">&#9654;</div>'
        f"<h1>{escape(show.title)}</h1><p class=episode>{escape(show.episode)}</p>"
        f"<p>{escape(show.blurb)}</p>{flash}"
        f'<div class="share">{share}</div></div>'
        f"<aside><h3>Up next</h3>{up_next}</aside></main>"
    )
    return layout(show.title, body)


def message(title: str, text: str, back: str = "/") -> str:
    body = (
        f'<main><div><h1>{escape(title)}</h1><p id="message">{escape(text)}</p>'
        f'<a class="button" href="{escape(back)}">Back to StreamCo</a></div></main>'
    )
    return layout(title, body)
