/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * libFuzzer driver for credential redaction (redact.h), which runs on every log line.
 *
 * Input: one control byte, then text (cut at the first NUL, as a C string would be).
 * Checked besides crashes, for ptv_redact_text() and ptv_redact_url():
 *  - like snprintf: the output is NUL-terminated inside @outlen for every @outlen, its length
 *    is min(return, outlen - 1), and a cut output is a prefix of the full one (so it can never
 *    end inside a credential);
 *  - the same input gives the same output (no hidden state);
 *  - a known credential is never shown: the text is followed by a blank and a URL carrying
 *    a secret (chosen by the control byte: password= query parameter, token= after '&',
 *    user:secret@ userinfo, or the Xtream /live/USER/SECRET/ID.ts path), and the secret must
 *    not appear in the output unless the fuzzed text already contained it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plextv/redact.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SECRET "Zq7SeCrEt9x"

static const char *const tails[] = {
	" http://h.example/get.php?username=u&password=" SECRET "&type=m3u",
	" https://h.example:8080/x?a=1&token=" SECRET,
	" http://user:" SECRET "@h.example/playlist.m3u",
	" http://h.example:80/live/user/" SECRET "/123.ts",
};

typedef size_t (*redact_fn)(const char *in, char *out, size_t outlen);

/* Runs @fn with a few output sizes and checks the snprintf contract; returns the full output. */
static char *redact_checked(redact_fn fn, const char *in)
{
	size_t full = fn(in, NULL, 0), again;
	char *out = malloc(full + 1), *cut;

	if (!out)
		abort();
	again = fn(in, out, full + 1);
	if (again != full || strlen(out) != full)
		abort();
	for (size_t outlen = 1; outlen <= full; outlen = outlen < 8 ? outlen + 1 : outlen * 3) {
		cut = malloc(outlen);
		if (!cut)
			abort();
		if (fn(in, cut, outlen) != full || strlen(cut) != outlen - 1 ||
		    memcmp(cut, out, outlen - 1))
			abort();
		free(cut);
	}
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *tail;
	char *text, *out;
	size_t n;

	if (!size)
		return 0;
	tail = tails[data[0] % (sizeof(tails) / sizeof(tails[0]))];
	data++;
	size--;
	n = strnlen((const char *)data, size);
	text = malloc(n + strlen(tail) + 1);
	if (!text)
		abort();
	memcpy(text, data, n);
	text[n] = '\0';

	free(redact_checked(ptv_redact_url, text));
	free(redact_checked(ptv_redact_text, text));

	/* A blank ends any URL in the fuzzed text, so the appended one is read on its own. */
	if (!strstr(text, SECRET)) {
		strcpy(text + n, tail);
		out = redact_checked(ptv_redact_text, text);
		if (strstr(out, SECRET))
			abort();
		free(out);
	}
	free(text);
	return 0;
}
