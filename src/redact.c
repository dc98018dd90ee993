/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Credential redaction (see redact.h). The scanner works on (pointer, length) slices and never
 * allocates, so the logger can call it on every line from any thread.
 *
 * Output goes through a small writer that keeps counting past the end of @out: the return value
 * is the full redacted length, like snprintf. Because the full redacted string is computed
 * before it is cut, a truncated result is a prefix of a redacted URL and can never end in the
 * middle of a credential.
 */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "plextv/common.h"
#include "plextv/redact.h"

#define REDACTED "***"

/* Query/fragment parameters whose value is a credential (compared case-insensitively). */
/* clang-format off */
static const char *const secret_params[] = {
	"username", "user", "password", "pass", "passwd", "pwd", "passphrase",
	"token", "key", "auth", "api_key", "apikey", "access_token", "secret",
	"sig", "signature", "x-amz-signature", "x-amz-credential", "x-amz-security-token",
};
/* clang-format on */

/* First path segment of Xtream Codes stream URLs: /live/USER/PASS/ID.ts and friends. */
static const char *const xtream_prefixes[] = {"live", "movie", "series", "timeshift"};

struct writer {
	char *out;
	size_t room; /* bytes of @out usable for text (outlen - 1) */
	size_t len;  /* full length written so far, may exceed room */
};

static void w_put(struct writer *w, const char *p, size_t n)
{
	if (w->len < w->room)
		memcpy(w->out + w->len, p, PTV_MIN(n, w->room - w->len));
	w->len += n;
}

static void w_init(struct writer *w, char *out, size_t outlen)
{
	w->out = out;
	w->room = outlen ? outlen - 1 : 0;
	w->len = 0;
}

static size_t w_finish(struct writer *w, size_t outlen)
{
	if (outlen)
		w->out[PTV_MIN(w->len, w->room)] = '\0';
	return w->len;
}

static bool is_scheme_char(char c)
{
	return isalnum((unsigned char)c) || c == '+' || c == '-' || c == '.';
}

/* Length of "scheme" when @s starts with "scheme://", else 0. */
static size_t scheme_len(const char *s, size_t n)
{
	size_t i = 0;

	if (!n || !isalpha((unsigned char)s[0]))
		return 0;
	while (i < n && is_scheme_char(s[i]))
		i++;
	if (n - i < 3 || memcmp(s + i, "://", 3) != 0)
		return 0;
	return i;
}

static bool slice_eq(const char *p, size_t n, const char *word)
{
	return strlen(word) == n && strncasecmp(p, word, n) == 0;
}

static bool slice_in(const char *p, size_t n, const char *const *words, size_t n_words)
{
	for (size_t i = 0; i < n_words; i++) {
		if (slice_eq(p, n, words[i]))
			return true;
	}
	return false;
}

static size_t span_until(const char *p, size_t n, const char *stops)
{
	size_t i = 0;

	while (i < n && !strchr(stops, p[i]))
		i++;
	return i;
}

/*
 * A well-formed authority is host, host:digits, [v6] or [v6]:digits. Anything else after the
 * host (say "user:pa" because the password contained a '/') means the real '@' comes later.
 */
static bool authority_is_plain(const char *p, size_t n)
{
	size_t i = 0;

	if (n && p[0] == '[') {
		i = span_until(p, n, "]");
		if (i == n)
			return false;
		i++;
	} else {
		i = span_until(p, n, ":");
	}
	if (i == n)
		return true;
	if (p[i] != ':')
		return false;
	for (i++; i < n; i++) {
		if (!isdigit((unsigned char)p[i]))
			return false;
	}
	return true;
}

/* "12345", "12345.ts", "12345.m3u8": the stream id of the short Xtream form /USER/PASS/ID. */
static bool is_stream_id(const char *p, size_t n)
{
	size_t i = 0;

	while (i < n && isdigit((unsigned char)p[i]))
		i++;
	if (i == 0)
		return false;
	if (i == n)
		return true;
	if (p[i] != '.' || i + 1 == n)
		return false;
	for (i++; i < n; i++) {
		if (!isalnum((unsigned char)p[i]))
			return false;
	}
	return true;
}

#define MAX_SEGS 4

/*
 * Writes the path with the Xtream USER and PASS segments replaced. Only the shapes Xtream
 * panels use are touched, so /Streaming/Channels/101 on an RTSP camera survives (the caller
 * only calls this for http and https).
 */
static void redact_path(struct writer *w, const char *p, size_t n)
{
	const char *seg[MAX_SEGS + 1];
	size_t seg_len[MAX_SEGS + 1], nseg = 0, pos = 0;
	bool hide[MAX_SEGS + 1] = {false};

	if (!n || p[0] != '/') {
		w_put(w, p, n);
		return;
	}
	/* Split "/a/b/c" into at most MAX_SEGS + 1 segments; more than that is never Xtream-short.
	 */
	while (pos < n && nseg <= MAX_SEGS) {
		size_t len = span_until(p + pos + 1, n - pos - 1, "/");

		seg[nseg] = p + pos + 1;
		seg_len[nseg++] = len;
		pos += len + 1;
	}
	if (nseg >= 4 &&
	    slice_in(seg[0], seg_len[0], xtream_prefixes, PTV_ARRAY_SIZE(xtream_prefixes)) &&
	    seg_len[1] && seg_len[2]) {
		hide[1] = hide[2] = true;
	} else if (nseg == 3 && pos >= n && seg_len[0] && seg_len[1] &&
		   is_stream_id(seg[2], seg_len[2])) {
		hide[0] = hide[1] = true;
	}
	for (size_t i = 0; i < nseg; i++) {
		w_put(w, "/", 1);
		if (hide[i])
			w_put(w, REDACTED, strlen(REDACTED));
		else
			w_put(w, seg[i], seg_len[i]);
	}
	w_put(w, p + pos, n - pos);
}

/*
 * Writes "?a=1&password=***#x". Every '?', '&', ';' and '#' starts a new parameter, which also
 * catches credentials of a URL nested unencoded inside a parameter value.
 */
static void redact_params(struct writer *w, const char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t start, name_len, val_len;

		w_put(w, p + i, 1); /* the separator */
		start = ++i;
		name_len = span_until(p + start, n - start, "=&;#?");
		i = start + name_len;
		if (i == n || p[i] != '=') {
			w_put(w, p + start, name_len);
			continue;
		}
		val_len = span_until(p + i + 1, n - i - 1, "&;#?");
		if (val_len &&
		    slice_in(p + start, name_len, secret_params, PTV_ARRAY_SIZE(secret_params))) {
			w_put(w, p + start, name_len + 1);
			w_put(w, REDACTED, strlen(REDACTED));
		} else {
			w_put(w, p + start, name_len + 1 + val_len);
		}
		i += 1 + val_len;
	}
}

static void redact_url_n(struct writer *w, const char *u, size_t n)
{
	size_t slen = scheme_len(u, n), auth, auth_end, at, path_end, i;
	bool http;

	if (!slen) {
		w_put(w, u, n);
		return;
	}
	http = slice_eq(u, slen, "http") || slice_eq(u, slen, "https");
	auth = slen + 3;
	auth_end = auth + span_until(u + auth, n - auth, "/?#");
	path_end = auth_end + span_until(u + auth_end, n - auth_end, "?#");

	/* userinfo ends at the last '@' of the authority (passwords do contain '@'). */
	at = n;
	for (i = auth; i < auth_end; i++) {
		if (u[i] == '@')
			at = i;
	}
	if (at == n && !authority_is_plain(u + auth, auth_end - auth)) {
		for (i = auth_end; i < path_end; i++) {
			if (u[i] == '@')
				at = i;
		}
		if (at != n) {
			auth_end = at + span_until(u + at, n - at, "/?#");
			path_end = auth_end + span_until(u + auth_end, n - auth_end, "?#");
		}
	}

	w_put(w, u, auth);
	/* An empty userinfo ("udp://@239.0.0.1:1234", VLC's listen syntax) hides nothing. */
	if (at != n && at > auth) {
		w_put(w, REDACTED, strlen(REDACTED));
		w_put(w, u + at, auth_end - at);
	} else {
		w_put(w, u + auth, auth_end - auth);
	}
	if (http)
		redact_path(w, u + auth_end, path_end - auth_end);
	else
		w_put(w, u + auth_end, path_end - auth_end);
	redact_params(w, u + path_end, n - path_end);
}

size_t ptv_redact_url(const char *url, char *out, size_t outlen)
{
	struct writer w;

	w_init(&w, out, outlen);
	redact_url_n(&w, url, strlen(url));
	return w_finish(&w, outlen);
}

static bool ends_url(char c)
{
	return c == '\0' || isspace((unsigned char)c) || c == '"' || c == '\'' || c == '<' ||
	       c == '>';
}

/* Sentence punctuation right after a URL in prose ("see http://h/U/P/1.") is not part of it. */
static bool is_trailing_punct(char c)
{
	return strchr(".,;:!?)]}", c) != NULL;
}

size_t ptv_redact_text(const char *text, char *out, size_t outlen)
{
	struct writer w;
	size_t n = strlen(text), copied = 0, i = 0;

	w_init(&w, out, outlen);
	while (i + 3 <= n) {
		const char *sep = memmem(text + i, n - i, "://", 3);
		size_t start, end, trim;

		if (!sep)
			break;
		i = (size_t)(sep - text);
		start = i;
		while (start > copied && is_scheme_char(text[start - 1]))
			start--;
		while (start < i && !isalpha((unsigned char)text[start]))
			start++;
		if (start == i) {
			i += 3;
			continue;
		}
		end = i + 3;
		while (!ends_url(text[end]))
			end++;
		trim = end;
		while (trim > i + 3 && is_trailing_punct(text[trim - 1]))
			trim--;
		w_put(&w, text + copied, start - copied);
		redact_url_n(&w, text + start, trim - start);
		copied = trim;
		i = end;
	}
	w_put(&w, text + copied, n - copied);
	return w_finish(&w, outlen);
}
