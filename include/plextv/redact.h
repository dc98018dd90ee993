/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Credential redaction for provider URLs. IPTV URLs embed credentials in three places:
 * userinfo (http://user:pass@host/), query parameters (get.php?username=U&password=P, token=,
 * key=, auth=...) and Xtream Codes paths (/live/USER/PASS/123.ts, /movie/…, /series/…, and the
 * short form /USER/PASS/123). Every one is replaced by "***"; the rest of the URL is kept so a
 * log line still says which host and stream it was about.
 */
#pragma once

#include <stddef.h>

/**
 * Copies @url into @out (always NUL-terminated when @outlen > 0) with credentials replaced.
 * Returns the length of the full redacted string (like snprintf), so a return >= @outlen
 * means it was truncated. Input that is not a URL is copied unchanged.
 */
size_t ptv_redact_url(const char *url, char *out, size_t outlen);

/** Same for free text: every scheme://… token inside @text is redacted in place in the copy. */
size_t ptv_redact_text(const char *text, char *out, size_t outlen);
