//! The HTML of the pages: one layout, tables described by their columns
//! (which the page's script reuses to redraw them from the JSON API), and
//! everything from a message or a worker escaped.

use std::fmt::Write as _;

use serde_json::Value;

use crate::dead_letters::Letter;

/// Escapes text for HTML content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One column of a live table: the JSON key it shows, its heading, and
/// optionally a link, `{key}` in it replaced by that key's value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    pub(crate) key: &'static str,
    pub(crate) title: &'static str,
    pub(crate) href: Option<&'static str>,
}

const fn column(key: &'static str, title: &'static str) -> Column {
    Column { key, title, href: None }
}

/// The queues page's columns.
pub(crate) const QUEUE_COLUMNS: [Column; 12] = [
    column("queue", "Queue"),
    column("type", "Type"),
    column("ready", "Ready"),
    column("unacked", "Unacked"),
    column("consumers", "Consumers"),
    column("publish_rate", "Publish/s"),
    column("deliver_rate", "Deliver/s"),
    column("ack_rate", "Ack/s"),
    column("oldest", "Oldest job"),
    column("held", "Held (retry/delay)"),
    Column {
        key: "dead",
        title: "Dead",
        href: Some("dead?queue={job_queue}"),
    },
    column("role", "Role"),
];

/// The workers page's columns.
pub(crate) const WORKER_COLUMNS: [Column; 12] = [
    column("name", "Name"),
    column("host", "Host"),
    column("pid", "PID"),
    column("queues", "Queues"),
    column("workers", "Workers/queue"),
    column("prefetch", "Prefetch"),
    column("ack", "Ack"),
    column("in_flight", "In flight"),
    column("done", "Done"),
    column("failed", "Failed"),
    column("up", "Up"),
    column("last_seen", "Last seen"),
];

/// The text of a JSON value in a cell.
fn cell(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(value) => value.to_string(),
    }
}

/// A table that `source` (a JSON endpoint answering `{"rows": [...]}`)
/// redraws every few seconds. A row with `"role": "hold"` is indented under
/// the one before; one with `"stale": true` is greyed.
pub(crate) fn live_table(id: &str, source: &str, columns: &[Column], rows: &[Value]) -> String {
    let mut html = format!(
        "<table id=\"{}\" data-source=\"{}\"><thead><tr>",
        escape(id),
        escape(source)
    );
    for column in columns {
        let _ = write!(html, "<th data-key=\"{}\"", column.key);
        if let Some(href) = column.href {
            let _ = write!(html, " data-href=\"{}\"", escape(href));
        }
        let _ = write!(html, ">{}</th>", escape(column.title));
    }
    html.push_str("</tr></thead><tbody>");
    for row in rows {
        let class = match (row.get("role").and_then(Value::as_str), row.get("stale")) {
            (Some("hold"), _) => " class=\"hold\"",
            (_, Some(Value::Bool(true))) => " class=\"stale\"",
            _ => "",
        };
        let _ = write!(html, "<tr{class}>");
        for column in columns {
            let text = escape(&cell(row.get(column.key)));
            match column.href {
                Some(href) => {
                    let link = fill(href, row);
                    let _ = write!(html, "<td><a href=\"{}\">{text}</a></td>", escape(&link));
                }
                None => {
                    let _ = write!(html, "<td data-key=\"{}\">{text}</td>", column.key);
                }
            }
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>");
    html
}

/// `href` with each `{key}` replaced by the row's value, URL-encoded.
fn fill(href: &str, row: &Value) -> String {
    let mut out = href.to_owned();
    if let Some(object) = row.as_object() {
        for (key, value) in object {
            let encoded: String = url::form_urlencoded::byte_serialize(cell(Some(value)).as_bytes()).collect();
            out = out.replace(&format!("{{{key}}}"), &encoded);
        }
    }
    out
}

/// A whole page: its title, which of the three it is, and its content.
pub(crate) fn layout(title: &str, current: &str, csrf: &str, content: &str) -> String {
    let mut nav = String::new();
    for (page, name) in [("queues", "Queues"), ("workers", "Workers"), ("dead", "Dead letters")] {
        let class = if page == current { " class=\"current\"" } else { "" };
        let _ = write!(nav, "<a href=\"{page}\"{class}>{name}</a>");
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"warren-csrf\" content=\"{csrf}\"><title>{title} · warren</title><style>{STYLE}</style></head>\
<body><header><strong>warren</strong><nav>{nav}</nav><span id=\"status\"></span></header>\
<main><h1>{title}</h1>{content}</main><script>{SCRIPT}</script></body></html>",
        csrf = escape(csrf),
        title = escape(title),
    )
}

/// The dead-letter page of `queue`: its letters from `page` on, with buttons.
pub(crate) fn dead_letters(queue: &str, total: u32, page: u32, page_size: u32, letters: &[Letter]) -> String {
    let q = escape(queue);
    let mut html = format!(
        "<p><span id=\"dead-total\">{total}</span> {noun} in <code>{dead}</code>. \
<button data-action=\"retry\" data-queue=\"{q}\">Retry all</button> \
<button data-action=\"delete\" data-queue=\"{q}\" data-confirm=\"Delete every dead letter of {q}?\">Delete all</button></p>\
<p id=\"result\" role=\"status\"></p>",
        dead = escape(&crate::amqp::topology::dead_queue(queue)),
        noun = if total == 1 { "dead letter" } else { "dead letters" },
    );
    html.push_str(
        "<table id=\"dead\"><thead><tr><th>Job</th><th>Id</th><th>Reason</th><th>Attempts</th>\
<th>Enqueued</th><th>Dead at</th><th>Error</th><th>Body</th><th></th></tr></thead><tbody>",
    );
    for letter in letters {
        let id = escape(&letter.id);
        let _ = write!(
            html,
            "<tr data-id=\"{id}\"><td>{}</td><td><code>{id}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
<td><pre class=\"error\">{}</pre></td><td><details><summary>body</summary><pre class=\"body\">{}</pre></details></td>\
<td><button data-action=\"retry\" data-queue=\"{q}\" data-id=\"{id}\">Retry</button> \
<button data-action=\"delete\" data-queue=\"{q}\" data-id=\"{id}\" data-confirm=\"Delete job {id} for good?\">Delete</button></td></tr>",
            escape(&letter.name),
            escape(&letter.reason),
            letter.attempt,
            escape(&letter.enqueued_at),
            escape(&letter.dead_at),
            escape(&letter.error),
            escape(&letter.body),
        );
    }
    html.push_str("</tbody></table><p>");
    let pages = total.div_ceil(page_size).max(1);
    if page > 0 {
        let _ = write!(
            html,
            "<a href=\"dead?queue={}&amp;page={}\">← newer</a> ",
            encode(queue),
            page - 1
        );
    }
    let _ = write!(html, "page {} of {pages}", page + 1);
    if page + 1 < pages {
        let _ = write!(
            html,
            " <a href=\"dead?queue={}&amp;page={}\">older →</a>",
            encode(queue),
            page + 1
        );
    }
    html.push_str("</p>");
    html
}

/// The dead-letter queues to choose from: job queues and their counts.
pub(crate) fn dead_queues(queues: &[(String, u64)]) -> String {
    let mut html = String::from("<table><thead><tr><th>Queue</th><th>Dead</th></tr></thead><tbody>");
    for (queue, dead) in queues {
        let _ = write!(
            html,
            "<tr><td><a href=\"dead?queue={}\">{}</a></td><td>{dead}</td></tr>",
            encode(queue),
            escape(queue)
        );
    }
    html.push_str("</tbody></table>");
    html
}

/// A message in place of a table: the management API is unreachable, say.
pub(crate) fn problem(text: &str) -> String {
    format!("<p class=\"problem\">{}</p>", escape(text))
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:0;color:#222}\
header{display:flex;gap:1.5em;align-items:center;padding:.6em 1.2em;background:#2d3b45;color:#fff}\
header a{color:#cfe3f0;margin-right:1em;text-decoration:none}header a.current{color:#fff;font-weight:bold}\
#status{margin-left:auto;font-size:12px;color:#cfe3f0}main{padding:0 1.2em}\
table{border-collapse:collapse;margin:.5em 0}th,td{border-bottom:1px solid #ddd;padding:.3em .7em;text-align:left;vertical-align:top}\
th{background:#f3f5f7}tr.hold td:first-child{padding-left:2em;color:#666}tr.hold{color:#666}tr.stale{color:#aaa}\
pre{margin:0;max-width:40em;white-space:pre-wrap;word-break:break-all}.problem{color:#a40}#result{color:#064}";

/// Redraws live tables from their JSON every 2 s; sends the dead-letter
/// buttons' POSTs with the CSRF token. Text goes in with `textContent`:
/// nothing from the broker is parsed as HTML.
const SCRIPT: &str = r#"
(function () {
  var csrf = document.querySelector('meta[name="warren-csrf"]').content;
  var status = document.getElementById('status');
  function fill(href, row) {
    return href.replace(/\{(\w+)\}/g, function (_, key) { return encodeURIComponent(row[key]); });
  }
  function redraw(table) {
    fetch(table.dataset.source, {credentials: 'same-origin'}).then(function (response) {
      if (!response.ok) { throw new Error(response.status + ' ' + response.statusText); }
      return response.json();
    }).then(function (data) {
      var columns = Array.prototype.map.call(table.tHead.rows[0].cells, function (th) {
        return {key: th.dataset.key, href: th.dataset.href};
      });
      var body = document.createElement('tbody');
      data.rows.forEach(function (row) {
        var tr = body.insertRow();
        if (row.role === 'hold') { tr.className = 'hold'; } else if (row.stale) { tr.className = 'stale'; }
        columns.forEach(function (column) {
          var td = tr.insertCell();
          var value = row[column.key];
          var text = value === undefined || value === null ? '' : String(value);
          if (column.href) {
            var a = document.createElement('a');
            a.href = fill(column.href, row);
            a.textContent = text;
            td.appendChild(a);
          } else {
            td.dataset.key = column.key;
            td.textContent = text;
          }
        });
      });
      table.replaceChild(body, table.tBodies[0]);
      status.textContent = data.error ? data.error : 'updated ' + new Date().toLocaleTimeString();
    }).catch(function (error) { status.textContent = 'not updated: ' + error.message; });
  }
  var tables = document.querySelectorAll('table[data-source]');
  if (tables.length) {
    setInterval(function () { tables.forEach(redraw); }, 2000);
  }
  document.addEventListener('click', function (event) {
    var button = event.target.closest('button[data-action]');
    if (!button) { return; }
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) { return; }
    var payload = {queue: button.dataset.queue};
    if (button.dataset.id) { payload.id = button.dataset.id; }
    button.disabled = true;
    fetch('api/dead/' + button.dataset.action, {
      method: 'POST',
      credentials: 'same-origin',
      headers: {'content-type': 'application/json', 'x-warren-csrf': csrf},
      body: JSON.stringify(payload)
    }).then(function (response) {
      return response.json().then(function (data) { return {ok: response.ok, data: data}; });
    }).then(function (answer) {
      var result = document.getElementById('result');
      result.textContent = answer.ok ? answer.data.message : 'failed: ' + answer.data.error;
      if (answer.ok) { setTimeout(function () { window.location.reload(); }, 800); }
      button.disabled = false;
    });
  });
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_text_is_escaped() {
        assert_eq!(
            escape("<script>alert(\"x\" & 'y')</script>"),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
    }

    #[test]
    fn a_live_table_links_and_escapes_its_cells() {
        let rows = [serde_json::json!({"queue": "<b>q</b>", "job_queue": "a b", "dead": 3, "role": "job"})];
        let html = live_table("queues", "api/queues", &QUEUE_COLUMNS, &rows);
        assert!(
            html.contains("<td data-key=\"queue\">&lt;b&gt;q&lt;/b&gt;</td>"),
            "{html}"
        );
        assert!(html.contains("<a href=\"dead?queue=a+b\">3</a>"), "{html}");
    }
}
