/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * XMLTV reader: libxml2's xmlReader pulled from a read callback, one <channel> or <programme>
 * at a time, in constant memory. See epg.h for the hardening rules; this file enforces them.
 */
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "epg_int.h"

/* Safe options only: never NOENT, DTDLOAD, DTDATTR, DTDVALID, XINCLUDE or HUGE. */
#define XP_OPTIONS                                                                     \
	(XML_PARSE_NONET | XML_PARSE_NOCDATA | XML_PARSE_COMPACT | XML_PARSE_NOERROR | \
	 XML_PARSE_NOWARNING)
#define XP_MAX_ATTR    4096  /* bytes of one attribute value */
#define XP_MAX_ICONS   8     /* <icon> children of a rating */
#define XP_GARBAGE_MAX 65536 /* leading bytes we skip looking for the document */
#define XP_CHECK_EVERY 4096  /* nodes between two wall-clock checks */
#define XF_RAW	       8192  /* input filter buffer */
#define XF_LOOK	       80    /* bytes visible after a '&' or '<': longest reference we accept */

struct xp {
	xmlTextReaderPtr r;
	const struct epg_input *in;
	const struct epg_parse_ops *ops;
	void *ctx;
	struct epg_parse_stats *st;
	uint64_t deadline_ns;
	unsigned nodes;
	int io_err;	  /* the input's error (size cap, read error) */
	bool started;	  /* leading garbage handled */
	unsigned skipped; /* garbage bytes skipped so far */
	char raw[XF_RAW]; /* input filter (see below) */
	size_t raw_pos, raw_len;
	bool raw_eof;
	int mode;
	int type, depth;	  /* of the current node, cached by xp_read() */
	const xmlChar *names[32]; /* interned programme child names (pointer compares) */
	struct epg_prog prog;
	struct epg_chan chan;
	struct ptv_buf text; /* element text scratch */
	struct ptv_buf abuf; /* attribute values scratch */
	unsigned singles;    /* at-most-once programme children already seen (bit per type) */
};

/* ---- input ---- */

/*
 * The input filter between the file and libxml2. It skips junk before the document and turns
 * a bare '&' (Xtream panels write "A&E HD" and icon URLs with raw query strings) into "&amp;",
 * outside CDATA sections, comments and processing instructions. Anything else malformed is
 * left to libxml2 and fails the import.
 */
enum xf_mode {
	XF_TEXT = 0,
	XF_CDATA,
	XF_COMMENT,
	XF_PI,
};

static bool has_bom(const char *b, size_t n)
{
	return (n >= 3 && !memcmp(b, "\xef\xbb\xbf", 3)) ||
	       (n >= 2 && (!memcmp(b, "\xfe\xff", 2) || !memcmp(b, "\xff\xfe", 2)));
}

/* Xtream panels save "This XML file does not appear to have any style information…" before
 * <tv>: drop bytes before the first '<' unless the document starts normally. */
static void xf_skip_garbage(struct xp *x)
{
	const char *b = x->raw + x->raw_pos, *lt;
	size_t n = x->raw_len - x->raw_pos, i = 0;

	while (i < n && strchr(" \t\r\n", b[i]))
		i++;
	if (i == n && !x->raw_eof)
		return; /* blanks only so far */
	if (i == n || b[i] == '<' || has_bom(b, n) || x->skipped >= XP_GARBAGE_MAX) {
		x->started = true;
		return;
	}
	lt = memchr(b, '<', n);
	if (!lt) {
		x->skipped += (unsigned)n;
		x->raw_pos = x->raw_len;
		return;
	}
	x->st->errors[PTV_EPG_ERR_LEADING_GARBAGE]++;
	x->started = true;
	x->raw_pos += (size_t)(lt - b);
}

/* Moves what is left to the front and reads more. Returns 0 or the input's error. */
static int xf_refill(struct xp *x)
{
	int n;

	memmove(x->raw, x->raw + x->raw_pos, x->raw_len - x->raw_pos);
	x->raw_len -= x->raw_pos;
	x->raw_pos = 0;
	while (!x->raw_eof && x->raw_len < XF_RAW) {
		n = x->in->read(x->in->ctx, x->raw + x->raw_len, (int)(XF_RAW - x->raw_len));
		if (n < 0)
			return n;
		if (!n)
			x->raw_eof = true;
		x->raw_len += (size_t)n;
		x->st->bytes += (uint64_t)n;
		if (!x->started)
			xf_skip_garbage(x);
		if (x->raw_len - x->raw_pos >= XF_LOOK)
			break;
	}
	return 0;
}

static bool is_name_char(unsigned char c, bool first)
{
	if (c >= 0x80 || c == '_' || c == ':' || (unsigned)((c | 0x20) - 'a') < 26u)
		return true;
	return !first && ((unsigned)(c - '0') < 10u || c == '-' || c == '.');
}

/* Whether @p (at a '&', @n bytes visible) starts a character or entity reference. */
static bool xf_is_ref(const unsigned char *p, size_t n)
{
	size_t i = 1;

	if (i < n && p[i] == '#') {
		bool hex = ++i < n && p[i] == 'x';
		size_t start = i += hex;

		while (i < n && i - start < 10 &&
		       ((unsigned)(p[i] - '0') < 10u ||
			(hex && (unsigned)((p[i] | 0x20) - 'a') < 6u)))
			i++;
		return i > start && i < n && p[i] == ';';
	}
	while (i < n && i < 64 && is_name_char(p[i], i == 1))
		i++;
	return i > 1 && i < n && p[i] == ';';
}

static bool xf_starts(const struct xp *x, const char *s, size_t n)
{
	return x->raw_len - x->raw_pos >= n && !memcmp(x->raw + x->raw_pos, s, n);
}

/*
 * Bytes of plain content from raw_pos on, up to @max, in the current mode: in text everything
 * up to a '&' or a "<!" / "<?" (a '<' as the last visible byte stops too, so the next one is
 * seen after a refill); in CDATA, comments and PIs up to the first byte of their terminator.
 */
static size_t xf_plain(const struct xp *x, size_t max)
{
	static const char stop[] = {
		[XF_TEXT] = '&', [XF_CDATA] = ']', [XF_COMMENT] = '-', [XF_PI] = '?'};
	const char *b = x->raw + x->raw_pos;
	size_t avail = x->raw_len - x->raw_pos, n = PTV_MIN(avail, max), i = 0;
	char c = stop[x->mode];

	if (x->mode != XF_TEXT) {
		const char *p = memchr(b, c, n);

		return p ? (size_t)(p - b) : n;
	}
	for (; i < n; i++) {
		if (b[i] == '&')
			break;
		if (b[i] == '<' && (i + 1 == avail || b[i + 1] == '!' || b[i + 1] == '?'))
			break;
	}
	return i;
}

/* One step at a special byte: copies or rewrites a few bytes. Returns bytes written, 0 when
 * @room is too small. */
static size_t xf_special(struct xp *x, char *out, size_t room)
{
	static const struct {
		enum xf_mode from, to;
		const char *tok;
	} toks[] = {
		{XF_TEXT, XF_CDATA, "<![CDATA["}, {XF_TEXT, XF_COMMENT, "<!--"},
		{XF_TEXT, XF_PI, "<?"},		  {XF_CDATA, XF_TEXT, "]]>"},
		{XF_COMMENT, XF_TEXT, "-->"},	  {XF_PI, XF_TEXT, "?>"},
	};
	const char *b = x->raw + x->raw_pos;

	for (size_t i = 0; i < PTV_ARRAY_SIZE(toks); i++) {
		size_t n = strlen(toks[i].tok);

		if ((int)toks[i].from != x->mode || !xf_starts(x, toks[i].tok, n))
			continue;
		if (room < n)
			return 0;
		memcpy(out, b, n);
		x->raw_pos += n;
		x->mode = toks[i].to;
		return n;
	}
	if (x->mode == XF_TEXT && *b == '&' &&
	    !xf_is_ref((const unsigned char *)b, x->raw_len - x->raw_pos)) {
		if (room < 5)
			return 0;
		memcpy(out, "&amp;", 5);
		x->raw_pos++;
		x->st->errors[PTV_EPG_ERR_BARE_AMPERSAND]++;
		return 5;
	}
	*out = *b;
	x->raw_pos++;
	return 1;
}

static int xp_io_read(void *arg, char *buf, int len)
{
	struct xp *x = arg;
	size_t out = 0, room = (size_t)len;
	int ret;

	while (out < room) {
		size_t avail = x->raw_len - x->raw_pos, n;

		if (!x->raw_eof && (avail < XF_LOOK || !x->started)) {
			ret = xf_refill(x);
			if (ret) {
				x->io_err = ret;
				return -1;
			}
			avail = x->raw_len - x->raw_pos;
		}
		if (!avail)
			break;
		n = xf_plain(x, room - out);
		if (n) {
			memcpy(buf + out, x->raw + x->raw_pos, n);
			x->raw_pos += n;
			out += n;
			continue;
		}
		n = xf_special(x, buf + out, room - out);
		if (!n)
			break;
		out += n;
	}
	return (int)out;
}

static int xp_io_close(void *arg)
{
	return 0;
}

/* ---- errors ---- */

static int xp_fail(struct xp *x, int err, const char *fmt, ...) PTV_PRINTF(3, 4);
static int xp_fail(struct xp *x, int err, const char *fmt, ...)
{
	va_list ap;

	if (!x->st->error[0]) {
		va_start(ap, fmt);
		vsnprintf(x->st->error, sizeof(x->st->error), fmt, ap);
		va_end(ap);
	}
	return err;
}

static void xp_libxml_error(void *arg, xmlErrorPtr e)
{
	struct xp *x = arg;
	size_t n;

	if (!e || e->level < XML_ERR_ERROR || x->st->error[0])
		return;
	snprintf(x->st->error, sizeof(x->st->error), "line %d: %s", e->line,
		 e->message ? e->message : "XML error");
	n = strlen(x->st->error);
	while (n && x->st->error[n - 1] == '\n')
		x->st->error[--n] = '\0';
}

/* A DOCTYPE may name xmltv.dtd (never loaded) but must not declare entities. */
static int xp_check_doctype(struct xp *x)
{
	xmlNodePtr node = xmlTextReaderCurrentNode(x->r);
	xmlDtdPtr dtd = node && node->type == XML_DTD_NODE ? (xmlDtdPtr)node : NULL;

	if (!dtd)
		return 0;
	if ((dtd->entities && xmlHashSize(dtd->entities) > 0) ||
	    (dtd->pentities && xmlHashSize(dtd->pentities) > 0))
		return xp_fail(x, -PTV_ERR_PARSE,
			       "the document declares entities (refused: XMLTV needs none)");
	return 0;
}

/* Next node. Returns 1, 0 at the end of the document, or a negative errno. */
static int xp_read(struct xp *x)
{
	int ret = xmlTextReaderRead(x->r), type;

	if (ret < 0) {
		if (x->io_err)
			return xp_fail(x, x->io_err, "%s", ptv_strerror(x->io_err));
		return xp_fail(x, -PTV_ERR_PARSE, "malformed XML");
	}
	if (!ret)
		return 0;
	if (++x->nodes % XP_CHECK_EVERY == 0 && x->deadline_ns && ptv_now_ns() > x->deadline_ns)
		return xp_fail(x, -ETIMEDOUT, "the import took longer than its time budget");
	x->depth = xmlTextReaderDepth(x->r);
	if (x->depth > PTV_EPG_MAX_DEPTH)
		return xp_fail(x, -PTV_ERR_LIMIT, "elements nested deeper than %d",
			       PTV_EPG_MAX_DEPTH);
	x->type = type = xmlTextReaderNodeType(x->r);
	if (type == XML_READER_TYPE_ENTITY_REFERENCE || type == XML_READER_TYPE_ENTITY)
		return xp_fail(x, -PTV_ERR_PARSE, "entity reference &%s; (refused)",
			       (const char *)xmlTextReaderConstName(x->r));
	if (type == XML_READER_TYPE_DOCUMENT_TYPE)
		return xp_check_doctype(x) ?: 1;
	return 1;
}

/* strlcpy: cheaper than snprintf("%s") on the per-programme path. */
static void xp_copy(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);

	if (n >= size)
		n = size - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static const char *xp_name(struct xp *x)
{
	return (const char *)xmlTextReaderConstName(x->r);
}

/* ---- text and attributes ---- */

/* Appends @s to @b, keeping @b under @max bytes (cut at a UTF-8 boundary). */
static bool xp_append_capped(struct ptv_buf *b, const char *s, size_t n, size_t max)
{
	bool cut = false;

	if (b->len + n > max) {
		n = max > b->len ? max - b->len : 0;
		while (n && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
		cut = true;
	}
	ptv_buf_append(b, s, n);
	return cut;
}

static void xp_trim(struct ptv_buf *b)
{
	size_t start = 0;

	while (b->len && strchr(" \t\r\n", b->data[b->len - 1]))
		b->len--;
	while (start < b->len && strchr(" \t\r\n", b->data[start]))
		start++;
	ptv_buf_consume(b, start);
	ptv_buf_putc(b, '\0');
	b->len--;
}

/*
 * Collects the text directly inside the current element (at @depth) into x->text, skipping
 * nested elements, and consumes the element's end. Blanks at both ends are trimmed.
 */
static int xp_text(struct xp *x, int depth, bool empty)
{
	bool cut = false;
	int ret;

	ptv_buf_reset(&x->text);
	while (!empty) {
		int type;

		ret = xp_read(x);
		if (ret <= 0)
			return ret ?: xp_fail(x, -PTV_ERR_PARSE, "document ends inside an element");
		type = x->type;
		if (type == XML_READER_TYPE_END_ELEMENT && x->depth == depth)
			break;
		if ((type == XML_READER_TYPE_TEXT || type == XML_READER_TYPE_CDATA ||
		     type == XML_READER_TYPE_WHITESPACE ||
		     type == XML_READER_TYPE_SIGNIFICANT_WHITESPACE) &&
		    x->depth == depth + 1) {
			const char *v = (const char *)xmlTextReaderConstValue(x->r);

			if (v)
				cut |= xp_append_capped(&x->text, v, strlen(v), PTV_EPG_MAX_FIELD);
		}
	}
	if (cut)
		x->st->errors[PTV_EPG_ERR_TOO_LONG]++;
	xp_trim(&x->text);
	return x->text.oom ? -ENOMEM : 0;
}

/* Consumes the current element and everything inside it. */
static int xp_skip(struct xp *x, int depth, bool empty)
{
	int ret;

	while (!empty) {
		ret = xp_read(x);
		if (ret <= 0)
			return ret ?: xp_fail(x, -PTV_ERR_PARSE, "document ends inside an element");
		if (x->type == XML_READER_TYPE_END_ELEMENT && x->depth == depth)
			break;
	}
	return 0;
}

/*
 * Copies the current element's attributes named @names[0..n) into @vals ("" when absent),
 * trimmed and capped. The strings live in x->abuf until the next call.
 */
static int xp_attrs(struct xp *x, const char *const *names, unsigned n, const char **vals)
{
	size_t offs[8];
	int ret;

	PTV_BUG_ON(n > PTV_ARRAY_SIZE(offs));
	ptv_buf_reset(&x->abuf);
	ptv_buf_putc(&x->abuf, '\0'); /* offset 0 is "" */
	for (unsigned i = 0; i < n; i++)
		offs[i] = 0;
	for (ret = xmlTextReaderMoveToFirstAttribute(x->r); ret == 1;
	     ret = xmlTextReaderMoveToNextAttribute(x->r)) {
		const char *an = (const char *)xmlTextReaderConstName(x->r);
		const char *av = (const char *)xmlTextReaderConstValue(x->r);

		for (unsigned i = 0; i < n && av; i++) {
			size_t start = x->abuf.len, len;

			if (strcmp(an, names[i]) || offs[i])
				continue;
			while (*av == ' ' || *av == '\t' || *av == '\n' || *av == '\r')
				av++;
			len = strlen(av);
			while (len && strchr(" \t\r\n", av[len - 1]))
				len--;
			if (xp_append_capped(&x->abuf, av, len, start + XP_MAX_ATTR))
				x->st->errors[PTV_EPG_ERR_TOO_LONG]++;
			ptv_buf_putc(&x->abuf, '\0');
			offs[i] = start;
		}
	}
	xmlTextReaderMoveToElement(x->r);
	if (ret < 0)
		return xp_fail(x, -PTV_ERR_PARSE, "malformed attribute");
	if (x->abuf.oom)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++)
		vals[i] = x->abuf.data + offs[i];
	return 0;
}

/* ---- programme fields ---- */

static bool field_begin(struct xp *x, uint8_t type, uint8_t sub)
{
	struct epg_prog *p = &x->prog;

	if (p->n_fields == PTV_EPG_MAX_FIELDS) {
		x->st->errors[PTV_EPG_ERR_TOO_MANY]++;
		return false;
	}
	p->fields[p->n_fields] = (struct epg_pfield){type, sub, (uint32_t)p->data.len, 0};
	return true;
}

static void field_str(struct xp *x, const char *s)
{
	ptv_buf_append(&x->prog.data, s, strlen(s) + 1);
}

static void field_end(struct xp *x)
{
	struct epg_prog *p = &x->prog;
	struct epg_pfield *f = &p->fields[p->n_fields];

	f->len = (uint32_t)(p->data.len - f->off);
	if (f->len > UINT16_MAX) {
		/* Several capped strings can still exceed a field's u16 length. */
		p->data.len = f->off;
		x->st->errors[PTV_EPG_ERR_TOO_LONG]++;
		return;
	}
	p->n_fields++;
}

/* At-most-once children (date, length, video, …): later ones are dropped. */
static bool single_ok(struct xp *x, uint8_t type)
{
	if (x->singles & (1u << type)) {
		x->st->errors[PTV_EPG_ERR_TOO_MANY]++;
		return false;
	}
	x->singles |= 1u << type;
	return true;
}

/* title, sub-title, desc, category, keyword, language, orig-language, country, premiere,
 * last-chance: lang + text. An empty premiere/last-chance still says something. */
static int f_lang_text(struct xp *x, uint8_t type, int depth, bool empty)
{
	static const char *const names[] = {"lang"};
	const char *lang;
	int ret = xp_attrs(x, names, 1, &lang);
	bool flag = type == EPG_F_PREMIERE || type == EPG_F_LAST_CHANCE;
	char langbuf[64];

	if (ret)
		return ret;
	xp_copy(langbuf, sizeof(langbuf), lang);
	ret = xp_text(x, depth, empty);
	if (ret)
		return ret;
	if (!x->text.len && !flag) {
		x->st->errors[PTV_EPG_ERR_EMPTY]++;
		return 0;
	}
	if ((type == EPG_F_LANGUAGE || type == EPG_F_ORIG_LANGUAGE || flag) && !single_ok(x, type))
		return 0;
	if (!field_begin(x, type, 0))
		return 0;
	field_str(x, langbuf);
	field_str(x, x->text.data ? x->text.data : "");
	field_end(x);
	if (type == EPG_F_TITLE)
		x->prog.has_title = true;
	return 0;
}

static int f_date(struct xp *x, uint8_t type, int depth, bool empty)
{
	char date[16];
	int ret = xp_text(x, depth, empty);

	if (ret)
		return ret;
	if (!x->text.len) {
		x->st->errors[PTV_EPG_ERR_EMPTY]++;
		return 0;
	}
	/* Plex reads <date> only as YYYYMMDD or YYYY. */
	if (!epg_norm_date(x->text.data, date, sizeof(date))) {
		x->st->errors[PTV_EPG_ERR_BAD_VALUE]++;
		return 0;
	}
	if (single_ok(x, type) && field_begin(x, type, 0)) {
		field_str(x, date);
		field_end(x);
	}
	return 0;
}

static int credit_child(struct xp *x, const char *name, int depth, bool empty, void *arg)
{
	static const char *const names[] = {"role", "guest"};
	const char *v[2];
	char role[XP_MAX_ATTR + 1], guest[8] = "";
	unsigned kind;
	int ret;

	for (kind = 0; kind < EPG_C_COUNT && strcmp(name, epg_credit_names[kind]); kind++)
		;
	if (kind == EPG_C_COUNT)
		return xp_skip(x, depth, empty);
	ret = xp_attrs(x, names, 2, v);
	if (ret)
		return ret;
	xp_copy(role, sizeof(role), kind == EPG_C_ACTOR ? v[0] : "");
	if (kind == EPG_C_ACTOR && (!strcmp(v[1], "yes") || !strcmp(v[1], "no")))
		xp_copy(guest, sizeof(guest), v[1]);
	ret = xp_text(x, depth, empty); /* <image> and <url> inside are skipped */
	if (ret)
		return ret;
	if (!x->text.len) {
		x->st->errors[PTV_EPG_ERR_EMPTY]++;
		return 0;
	}
	if (field_begin(x, EPG_F_CREDIT, (uint8_t)kind)) {
		field_str(x, x->text.data);
		field_str(x, role);
		field_str(x, guest);
		field_end(x);
	}
	return 0;
}

/* Calls @child for each element inside the current one and consumes its end. */
static int xp_children(struct xp *x, int depth, bool empty,
		       int (*child)(struct xp *x, const char *name, int depth, bool empty,
				    void *arg),
		       void *arg)
{
	int ret;

	while (!empty) {
		int type;

		ret = xp_read(x);
		if (ret <= 0)
			return ret ?: xp_fail(x, -PTV_ERR_PARSE, "document ends inside an element");
		type = x->type;
		if (type == XML_READER_TYPE_END_ELEMENT && x->depth == depth)
			break;
		if (type == XML_READER_TYPE_ELEMENT) {
			ret = child(x, xp_name(x), x->depth, xmlTextReaderIsEmptyElement(x->r) == 1,
				    arg);
			if (ret)
				return ret;
		}
	}
	return 0;
}

static int f_credits(struct xp *x, uint8_t type, int depth, bool empty)
{
	return xp_children(x, depth, empty, credit_child, NULL);
}

static int f_length(struct xp *x, uint8_t type, int depth, bool empty)
{
	static const char *const names[] = {"units"};
	static const struct {
		const char *units;
		int64_t mult;
	} units[] = {{"seconds", 1}, {"minutes", 60}, {"hours", 3600}};
	char unit[16], *end;
	const char *u;
	long long v;
	int ret = xp_attrs(x, names, 1, &u);

	if (ret)
		return ret;
	xp_copy(unit, sizeof(unit), u);
	ret = xp_text(x, depth, empty);
	if (ret)
		return ret;
	v = x->text.len ? strtoll(x->text.data, &end, 10) : -1;
	for (size_t i = 0; i < PTV_ARRAY_SIZE(units); i++) {
		if (strcmp(unit, units[i].units) || v <= 0 || *end || v > 1000000)
			continue;
		if (!single_ok(x, type) || !field_begin(x, type, 0))
			return 0;
		field_str(x, unit);
		field_str(x, x->text.data);
		field_end(x);
		x->prog.length_s = v * units[i].mult;
		return 0;
	}
	x->st->errors[PTV_EPG_ERR_BAD_VALUE]++;
	return 0;
}

static int f_icon(struct xp *x, uint8_t type, int depth, bool empty)
{
	static const char *const names[] = {"src", "width", "height"};
	const char *v[3];
	int ret = xp_attrs(x, names, 3, v);

	if (ret)
		return ret;
	if (!v[0][0]) {
		x->st->errors[PTV_EPG_ERR_BAD_VALUE]++;
	} else if (field_begin(x, type, 0)) {
		/* width/height are numbers or absent (Jellyfin's test has width=""). */
		field_str(x, v[0]);
		field_str(x, strspn(v[1], "0123456789") == strlen(v[1]) ? v[1] : "");
		field_str(x, strspn(v[2], "0123456789") == strlen(v[2]) ? v[2] : "");
		field_end(x);
	}
	return xp_skip(x, depth, empty);
}

/* url (system) and episode-num (system, default "onscreen"): attribute + text. */
static int f_system_text(struct xp *x, uint8_t type, int depth, bool empty)
{
	static const char *const names[] = {"system"};
	char system[128];
	const char *s;
	int ret = xp_attrs(x, names, 1, &s);

	if (ret)
		return ret;
	xp_copy(system, sizeof(system), s[0] ? s : (type == EPG_F_EPISODE_NUM ? "onscreen" : ""));
	ret = xp_text(x, depth, empty);
	if (ret)
		return ret;
	if (!x->text.len) {
		x->st->errors[PTV_EPG_ERR_EMPTY]++;
		return 0;
	}
	/* A malformed xmltv_ns ("S01E02") still tells people the episode: keep it as text. */
	if (type == EPG_F_EPISODE_NUM && !strcmp(system, "xmltv_ns") &&
	    !epg_xmltv_ns_ok(x->text.data)) {
		x->st->errors[PTV_EPG_ERR_BAD_EPISODE]++;
		snprintf(system, sizeof(system), "onscreen");
	}
	if (field_begin(x, type, 0)) {
		field_str(x, system);
		field_str(x, x->text.data);
		field_end(x);
	}
	return 0;
}

/* video/audio: a few text children, stored in fixed slots. */
struct xp_slots {
	const char *const *names;
	unsigned n;
	struct ptv_buf vals[4];
};

static int slot_child(struct xp *x, const char *name, int depth, bool empty, void *arg)
{
	struct xp_slots *s = arg;
	int ret;

	for (unsigned i = 0; i < s->n; i++) {
		if (strcmp(name, s->names[i]) || s->vals[i].len)
			continue;
		ret = xp_text(x, depth, empty);
		if (!ret)
			ptv_buf_append(&s->vals[i], x->text.data ?: "", x->text.len);
		return ret;
	}
	return xp_skip(x, depth, empty);
}

static int f_slots(struct xp *x, uint8_t type, int depth, bool empty)
{
	static const char *const video[] = {"present", "colour", "aspect", "quality"};
	static const char *const audio[] = {"present", "stereo"};
	struct xp_slots s = {type == EPG_F_VIDEO ? video : audio, type == EPG_F_VIDEO ? 4 : 2};
	bool any = false;
	int ret;

	ret = xp_children(x, depth, empty, slot_child, &s);
	for (unsigned i = 0; i < s.n; i++)
		any |= s.vals[i].len > 0;
	if (!ret && !any)
		x->st->errors[PTV_EPG_ERR_EMPTY]++;
	if (!ret && any && single_ok(x, type) && field_begin(x, type, 0)) {
		for (unsigned i = 0; i < s.n; i++) {
			ptv_buf_putc(&s.vals[i], '\0');
			field_str(x, s.vals[i].data);
		}
		field_end(x);
	}
	for (unsigned i = 0; i < PTV_ARRAY_SIZE(s.vals); i++)
		ptv_buf_free(&s.vals[i]);
	return ret;
}

static int f_prev_shown(struct xp *x, uint8_t type, int depth, bool empty)
{
	static const char *const names[] = {"start", "channel"};
	char start[24] = "";
	const char *v[2];
	int64_t t;
	int ret = xp_attrs(x, names, 2, v);

	if (ret)
		return ret;
	if (v[0][0]) {
		if (epg_parse_time(v[0], &t) >= 0)
			epg_format_time(t, start);
		else
			x->st->errors[PTV_EPG_ERR_BAD_VALUE]++;
	}
	if (single_ok(x, type) && field_begin(x, type, 0)) {
		field_str(x, start);
		field_str(x, v[1]);
		field_end(x);
	}
	return xp_skip(x, depth, empty);
}

static int f_new(struct xp *x, uint8_t type, int depth, bool empty)
{
	if (single_ok(x, type) && field_begin(x, type, 0)) {
		field_str(x, "");
		field_end(x);
	}
	return xp_skip(x, depth, empty);
}

static bool one_of(const char *v, const char *const *allowed)
{
	for (; *allowed; allowed++) {
		if (!strcmp(v, *allowed))
			return true;
	}
	return false;
}

/* <subtitles type?><language lang?>text</language></subtitles> */
struct xp_subs {
	char lang[64];
	struct ptv_buf text;
};

static int subtitles_child(struct xp *x, const char *name, int depth, bool empty, void *arg)
{
	static const char *const names[] = {"lang"};
	struct xp_subs *sub = arg;
	const char *lang;
	int ret;

	if (strcmp(name, "language") || sub->text.len)
		return xp_skip(x, depth, empty);
	ret = xp_attrs(x, names, 1, &lang);
	if (ret)
		return ret;
	xp_copy(sub->lang, sizeof(sub->lang), lang);
	ret = xp_text(x, depth, empty);
	if (!ret)
		ptv_buf_append(&sub->text, x->text.data ?: "", x->text.len);
	return ret;
}

static int f_subtitles(struct xp *x, uint8_t type, int depth, bool empty)
{
	static const char *const types[] = {"teletext", "onscreen", "deaf-signed", NULL};
	static const char *const names[] = {"type"};
	struct xp_subs sub = {""};
	char stype[16] = "";
	const char *t;
	int ret = xp_attrs(x, names, 1, &t);

	if (ret)
		return ret;
	if (one_of(t, types))
		xp_copy(stype, sizeof(stype), t);
	else if (t[0])
		x->st->errors[PTV_EPG_ERR_BAD_VALUE]++;
	ret = xp_children(x, depth, empty, subtitles_child, &sub);
	ptv_buf_putc(&sub.text, '\0');
	if (!ret && field_begin(x, type, 0)) {
		field_str(x, stype);
		field_str(x, sub.text.len > 1 ? sub.lang : "");
		field_str(x, sub.text.data);
		field_end(x);
	}
	ptv_buf_free(&sub.text);
	return ret;
}

/* rating / star-rating: system + <value> + <icon src>… */
struct xp_rating {
	struct ptv_buf value;
	struct ptv_buf icons; /* NUL-separated */
	unsigned n_icons;
};

static int rating_child(struct xp *x, const char *name, int depth, bool empty, void *arg)
{
	static const char *const names[] = {"src"};
	struct xp_rating *rt = arg;
	const char *src;
	int ret;

	if (!strcmp(name, "value") && !rt->value.len) {
		ret = xp_text(x, depth, empty);
		if (!ret)
			ptv_buf_append(&rt->value, x->text.data ?: "", x->text.len);
		return ret;
	}
	if (!strcmp(name, "icon") && rt->n_icons < XP_MAX_ICONS) {
		ret = xp_attrs(x, names, 1, &src);
		if (ret)
			return ret;
		if (src[0]) {
			ptv_buf_append(&rt->icons, src, strlen(src) + 1);
			rt->n_icons++;
		}
	}
	return xp_skip(x, depth, empty);
}

static int f_rating(struct xp *x, uint8_t type, int depth, bool empty)
{
	static const char *const names[] = {"system"};
	struct xp_rating rt = {0};
	char system[128];
	const char *s;
	int ret = xp_attrs(x, names, 1, &s);

	if (ret)
		return ret;
	xp_copy(system, sizeof(system), s);
	ret = xp_children(x, depth, empty, rating_child, &rt);
	if (!ret && !rt.value.len)
		x->st->errors[PTV_EPG_ERR_EMPTY]++; /* the DTD requires <value> */
	if (!ret && rt.value.len && field_begin(x, type, 0)) {
		ptv_buf_putc(&rt.value, '\0');
		field_str(x, system);
		field_str(x, rt.value.data);
		if (rt.icons.len)
			ptv_buf_append(&x->prog.data, rt.icons.data, rt.icons.len);
		field_end(x);
	}
	ptv_buf_free(&rt.value);
	ptv_buf_free(&rt.icons);
	return ret;
}

/*
 * Reads the element's text and stores one field of @type: the @n attributes, then the text.
 * An element without text is counted as empty and stores nothing.
 */
static int attrs_text_field(struct xp *x, uint8_t type, int depth, bool empty,
			    char (*attrs)[XP_MAX_ATTR + 1], unsigned n)
{
	int ret = xp_text(x, depth, empty);

	if (ret)
		return ret;
	if (!x->text.len) {
		x->st->errors[PTV_EPG_ERR_EMPTY]++;
		return 0;
	}
	if (field_begin(x, type, 0)) {
		for (unsigned i = 0; i < n; i++)
			field_str(x, attrs[i]);
		field_str(x, x->text.data);
		field_end(x);
	}
	return 0;
}

static int f_review(struct xp *x, uint8_t type, int depth, bool empty)
{
	static const char *const names[] = {"type", "source", "reviewer", "lang"};
	static const char *const types[] = {"text", "url", NULL};
	char attrs[4][XP_MAX_ATTR + 1];
	const char *v[4];
	int ret = xp_attrs(x, names, 4, v);

	if (ret)
		return ret;
	for (unsigned i = 0; i < 4; i++)
		xp_copy(attrs[i], sizeof(attrs[i]), v[i]);
	if (!one_of(attrs[0], types))
		snprintf(attrs[0], sizeof(attrs[0]), "text"); /* required by the DTD */
	return attrs_text_field(x, type, depth, empty, attrs, 4);
}

static int f_image(struct xp *x, uint8_t type, int depth, bool empty)
{
	static const char *const names[] = {"type", "size", "orient", "system"};
	static const char *const types[] = {"poster", "backdrop",  "still",
					    "person", "character", NULL};
	static const char *const sizes[] = {"1", "2", "3", NULL};
	static const char *const orients[] = {"P", "L", NULL};
	static const char *const *const allowed[] = {types, sizes, orients, NULL};
	char attrs[4][XP_MAX_ATTR + 1];
	const char *v[4];
	int ret = xp_attrs(x, names, 4, v);

	if (ret)
		return ret;
	for (unsigned i = 0; i < 4; i++) {
		bool ok = !v[i][0] || !allowed[i] || one_of(v[i], allowed[i]);

		xp_copy(attrs[i], sizeof(attrs[i]), ok ? v[i] : "");
		if (!ok)
			x->st->errors[PTV_EPG_ERR_BAD_VALUE]++;
	}
	return attrs_text_field(x, type, depth, empty, attrs, 4);
}

static const struct {
	const char *name;
	uint8_t type;
	int (*fn)(struct xp *x, uint8_t type, int depth, bool empty);
} prog_children[] = {
	{"title", EPG_F_TITLE, f_lang_text},
	{"sub-title", EPG_F_SUB_TITLE, f_lang_text},
	{"desc", EPG_F_DESC, f_lang_text},
	{"credits", EPG_F_CREDIT, f_credits},
	{"date", EPG_F_DATE, f_date},
	{"category", EPG_F_CATEGORY, f_lang_text},
	{"keyword", EPG_F_KEYWORD, f_lang_text},
	{"language", EPG_F_LANGUAGE, f_lang_text},
	{"orig-language", EPG_F_ORIG_LANGUAGE, f_lang_text},
	{"length", EPG_F_LENGTH, f_length},
	{"icon", EPG_F_ICON, f_icon},
	{"url", EPG_F_URL, f_system_text},
	{"country", EPG_F_COUNTRY, f_lang_text},
	{"episode-num", EPG_F_EPISODE_NUM, f_system_text},
	{"video", EPG_F_VIDEO, f_slots},
	{"audio", EPG_F_AUDIO, f_slots},
	{"previously-shown", EPG_F_PREVIOUSLY_SHOWN, f_prev_shown},
	{"premiere", EPG_F_PREMIERE, f_lang_text},
	{"last-chance", EPG_F_LAST_CHANCE, f_lang_text},
	{"new", EPG_F_NEW, f_new},
	{"subtitles", EPG_F_SUBTITLES, f_subtitles},
	{"rating", EPG_F_RATING, f_rating},
	{"star-rating", EPG_F_STAR_RATING, f_rating},
	{"review", EPG_F_REVIEW, f_review},
	{"image", EPG_F_IMAGE, f_image},
};

static int prog_child(struct xp *x, const char *name, int depth, bool empty, void *arg)
{
	int ret;

	/* Element names are interned in the reader's dictionary: compare pointers. */
	for (size_t i = 0; i < PTV_ARRAY_SIZE(prog_children); i++) {
		if ((const char *)x->names[i] != name)
			continue;
		ret = prog_children[i].fn(x, prog_children[i].type, depth, empty);
		return ret ?: (x->prog.data.oom ? -ENOMEM : 0);
	}
	return xp_skip(x, depth, empty); /* <live/>, x-* and other non-DTD elements */
}

/* ---- channels and programmes ---- */

static int xp_programme(struct xp *x, int depth, bool empty)
{
	static const char *const names[] = {"channel", "start", "stop"};
	struct epg_prog *p = &x->prog;
	char start[64], stop[64];
	const char *v[3];
	int ret = xp_attrs(x, names, 3, v), tr;

	if (ret)
		return ret;
	ptv_buf_reset(&p->data);
	ptv_buf_append(&p->data, v[0], strlen(v[0]) + 1); /* the channel at offset 0 */
	xp_copy(start, sizeof(start), v[1]);
	xp_copy(stop, sizeof(stop), v[2]);
	p->n_fields = 0;
	p->flags = 0;
	p->has_title = false;
	p->length_s = -1;
	x->singles = 0;
	ret = xp_children(x, depth, empty, prog_child, NULL);
	if (ret)
		return ret;
	if (p->data.oom)
		return -ENOMEM;
	p->channel = p->data.data;
	if (!p->channel[0]) {
		x->st->errors[PTV_EPG_ERR_NO_CHANNEL]++;
		return 0;
	}
	tr = epg_parse_time(start, &p->start);
	if (tr < 0) {
		x->st->errors[PTV_EPG_ERR_BAD_START]++;
		return 0;
	}
	if (tr > 0)
		x->st->errors[PTV_EPG_ERR_UNKNOWN_TZ]++;
	p->stop = -1;
	if (stop[0]) {
		tr = epg_parse_time(stop, &p->stop);
		if (tr > 0)
			x->st->errors[PTV_EPG_ERR_UNKNOWN_TZ]++;
		if (tr < 0 || p->stop <= p->start) {
			x->st->errors[PTV_EPG_ERR_BAD_STOP]++;
			p->stop = -1;
		}
	}
	if (!p->has_title)
		x->st->errors[PTV_EPG_ERR_NO_TITLE]++;
	return x->ops->programme ? x->ops->programme(p, x->ctx) : 0;
}

static int chan_child(struct xp *x, const char *name, int depth, bool empty, void *arg)
{
	static const char *const src_name[] = {"src"};
	struct epg_chan *c = &x->chan;
	const char *src;
	int ret;

	if (!strcmp(name, "display-name")) {
		ret = xp_text(x, depth, empty);
		if (ret || !x->text.len)
			return ret;
		if (c->n_names == PTV_EPG_MAX_NAMES) {
			x->st->errors[PTV_EPG_ERR_TOO_MANY]++;
			return 0;
		}
		/* Offsets for now: the buffer may move. */
		c->names[c->n_names++] = (const char *)(uintptr_t)c->data.len;
		ptv_buf_append(&c->data, x->text.data, x->text.len + 1);
		return 0;
	}
	if (!strcmp(name, "icon") && !c->icon) {
		ret = xp_attrs(x, src_name, 1, &src);
		if (ret)
			return ret;
		if (src[0]) {
			c->icon = (const char *)(uintptr_t)c->data.len;
			ptv_buf_append(&c->data, src, strlen(src) + 1);
		}
	}
	return xp_skip(x, depth, empty);
}

static int xp_channel(struct xp *x, int depth, bool empty)
{
	static const char *const names[] = {"id"};
	struct epg_chan *c = &x->chan;
	const char *id;
	int ret = xp_attrs(x, names, 1, &id);

	if (ret)
		return ret;
	ptv_buf_reset(&c->data);
	ptv_buf_append(&c->data, id, strlen(id) + 1);
	c->n_names = 0;
	c->icon = NULL;
	ret = xp_children(x, depth, empty, chan_child, NULL);
	if (ret)
		return ret;
	if (c->data.oom)
		return -ENOMEM;
	c->id = c->data.data;
	for (unsigned i = 0; i < c->n_names; i++)
		c->names[i] = c->data.data + (uintptr_t)c->names[i];
	c->icon = c->icon ? c->data.data + (uintptr_t)c->icon : "";
	if (!c->id[0]) {
		x->st->errors[PTV_EPG_ERR_NO_CHANNEL]++;
		return 0;
	}
	return x->ops->channel ? x->ops->channel(c, x->ctx) : 0;
}

static int xp_document(struct xp *x)
{
	bool seen_root = false;
	int ret;

	while ((ret = xp_read(x)) == 1) {
		int depth = x->depth;
		bool empty;
		const char *name;

		if (x->type != XML_READER_TYPE_ELEMENT)
			continue;
		empty = xmlTextReaderIsEmptyElement(x->r) == 1;
		name = xp_name(x);
		if (depth == 0) {
			if (strcmp(name, "tv"))
				return xp_fail(x, -PTV_ERR_PARSE,
					       "not an XMLTV document (root element <%.40s>)",
					       name);
			seen_root = true;
			continue;
		}
		if (depth != 1)
			ret = xp_skip(x, depth, empty);
		else if (!strcmp(name, "programme"))
			ret = xp_programme(x, depth, empty);
		else if (!strcmp(name, "channel"))
			ret = xp_channel(x, depth, empty);
		else
			ret = xp_skip(x, depth, empty);
		if (ret)
			return ret;
	}
	if (!ret && !seen_root)
		return xp_fail(x, -PTV_ERR_PARSE, "not an XMLTV document (no <tv> element)");
	return ret;
}

static pthread_once_t xp_once = PTHREAD_ONCE_INIT;

static void xp_global_init(void)
{
	/* libxml2 needs this once, before threads use it concurrently. */
	xmlInitParser();
}

int epg_parse(const struct epg_input *in, const struct epg_parse_ops *ops, void *ctx,
	      uint64_t deadline_ns, struct epg_parse_stats *st)
{
	struct xp x = {.in = in, .ops = ops, .ctx = ctx, .st = st, .deadline_ns = deadline_ns};
	int ret;

	pthread_once(&xp_once, xp_global_init);
	x.r = xmlReaderForIO(xp_io_read, xp_io_close, &x, "xmltv.xml", NULL, XP_OPTIONS);
	if (!x.r)
		return x.io_err ? x.io_err : xp_fail(&x, -PTV_ERR_PARSE, "document is empty");
	xmlTextReaderSetStructuredErrorHandler(x.r, xp_libxml_error, &x);
	PTV_BUG_ON(PTV_ARRAY_SIZE(prog_children) > PTV_ARRAY_SIZE(x.names));
	for (size_t i = 0; i < PTV_ARRAY_SIZE(prog_children); i++)
		x.names[i] = xmlTextReaderConstString(x.r, (const xmlChar *)prog_children[i].name);
	ret = xp_document(&x);
	xmlFreeTextReader(x.r);
	ptv_buf_free(&x.prog.data);
	ptv_buf_free(&x.chan.data);
	ptv_buf_free(&x.text);
	ptv_buf_free(&x.abuf);
	return ret;
}

struct mem_in {
	const char *p;
	size_t left;
};

static int mem_read(void *arg, char *buf, int len)
{
	struct mem_in *m = arg;
	size_t n = PTV_MIN(m->left, (size_t)len);

	memcpy(buf, m->p, n);
	m->p += n;
	m->left -= n;
	return (int)n;
}

int epg_parse_mem(const char *data, size_t len, const struct epg_parse_ops *ops, void *ctx,
		  struct epg_parse_stats *st)
{
	struct mem_in m = {data, len};
	struct epg_input in = {mem_read, &m};

	return epg_parse(&in, ops, ctx, 0, st);
}
