/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * /xmltv.xml: a resumable renderer over an LMDB read transaction per slice, and its HTTP
 * stream.
 *
 * Flow control. A slice (~1 MiB of XML) is rendered on the pool and handed to the reactor as a
 * blob (ptv_pool_submit's done callback runs on the request's reactor), which queues it by
 * reference. At most one slice is being rendered per response; the next is started right away
 * while less than EPG_HIGH_WATER bytes wait to be sent, else when the queue has drained
 * (on_drain). A slow client therefore holds at most about EPG_HIGH_WATER + one slice, and no
 * pool thread ever waits for a socket. Each slice opens its own read transaction, so a slow
 * client does not pin old pages; an import that commits mid-response shows up from the next
 * slice on (each channel's programmes continue from the last start time sent).
 */
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "epg_int.h"
#include "plextv/build-config.h"
#include "plextv/http.h"
#include "plextv/lineup.h"
#include "plextv/log.h"
#include "plextv/metrics.h"
#include "plextv/store.h"
#include "plextv/workers.h"

#define EPG_SLICE      (1u << 20)
#define EPG_HIGH_WATER (2u << 20)
#define EPG_ZCHUNK     (64u << 10)
#define EPG_GZIP_LEVEL 1 /* XML compresses ~10x even at level 1; level 6 costs 4x the CPU */

enum render_phase {
	RP_HEAD = 0,
	RP_CHANNELS,
	RP_PROGRAMMES,
	RP_TAIL,
	RP_DONE,
};

struct ptv_epg_render {
	struct ptv_store *s;
	struct ptv_lineup *l;
	struct ptv_epg_opts o;
	int64_t now, window_start;
	enum render_phase phase;
	size_t ch;	     /* current lineup channel */
	bool in_channel;     /* resuming inside channel @ch */
	bool dummy;	     /* ... in its dummy blocks */
	uint64_t next_start; /* ... at this start (store time, before the channel's shift) */
	uint32_t rendered;   /* programmes of @ch sent so far */
	bool gzip, z_ready, z_done;
	z_stream z;
	struct ptv_buf raw; /* XML before compression */
};

/* ---- escaping ---- */

/* Length of the valid UTF-8 sequence at @s (at most @n bytes), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : 2;
	uint32_t cp;

	if (s[0] < 0xc2 || s[0] > 0xf4 || len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	}
	cp = len == 2	? (s[0] & 0x1fu) << 6 | (s[1] & 0x3fu)
	     : len == 3 ? (s[0] & 0x0fu) << 12 | (s[1] & 0x3fu) << 6 | (s[2] & 0x3fu)
			: (s[0] & 0x07u) << 18 | (s[1] & 0x3fu) << 12 | (s[2] & 0x3fu) << 6 |
				  (s[3] & 0x3fu);
	if ((len == 3 &&
	     (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff) || cp == 0xfffe || cp == 0xffff)) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/*
 * Appends @s escaped for XML text and attribute values: & < > " ' as entities, control
 * characters and invalid UTF-8 (only lineup names can carry them: parsed text is valid) as
 * '?', so the document stays well-formed whatever a playlist said.
 */
static void esc(struct ptv_buf *b, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str);
	char *o;

	if (ptv_buf_reserve(b, n * 6 + 1))
		return;
	o = b->data + b->len;
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		size_t l;

		if (c >= 0x80) {
			l = utf8_len(s + i, n - i);
			if (!l) {
				*o++ = '?';
				i++;
				continue;
			}
			memcpy(o, s + i, l);
			o += l;
			i += l;
			continue;
		}
		i++;
		switch (c) {
		case '&':
			memcpy(o, "&amp;", 5), o += 5;
			break;
		case '<':
			memcpy(o, "&lt;", 4), o += 4;
			break;
		case '>':
			memcpy(o, "&gt;", 4), o += 4;
			break;
		case '"':
			memcpy(o, "&quot;", 6), o += 6;
			break;
		case '\'':
			memcpy(o, "&apos;", 6), o += 6;
			break;
		default:
			*o++ = c < 0x20 && c != '\t' && c != '\n' && c != '\r' ? '?' : (char)c;
		}
	}
	b->len = (size_t)(o - b->data);
}

static void put(struct ptv_buf *b, const char *s)
{
	ptv_buf_puts(b, s);
}

/* ` name="value"` when value is not empty. */
static void attr(struct ptv_buf *b, const char *name, const char *value)
{
	if (!value[0])
		return;
	ptv_buf_putc(b, ' ');
	put(b, name);
	put(b, "=\"");
	esc(b, value);
	ptv_buf_putc(b, '"');
}

/* <name attr="…">text</name> */
static void elem(struct ptv_buf *b, const char *indent, const char *name, const char *aname,
		 const char *aval, const char *text)
{
	put(b, indent);
	ptv_buf_putc(b, '<');
	put(b, name);
	if (aname)
		attr(b, aname, aval);
	if (!text[0]) {
		put(b, " />\n");
		return;
	}
	ptv_buf_putc(b, '>');
	esc(b, text);
	put(b, "</");
	put(b, name);
	put(b, ">\n");
}

static bool is_http_url(const char *s)
{
	return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8);
}

/* ---- channels ---- */

/* The guide channel of @c in this transaction, or 0. */
static uint32_t chan_gkey(MDB_txn *txn, struct ptv_epg_render *r,
			  const struct ptv_lineup_channel *c)
{
	enum epg_how how;
	uint32_t gkey;

	return epg_resolve(txn, r->s, c->id, c->tvg_id, c->tvg_name, c->name, &gkey, &how) ? 0
											   : gkey;
}

static void render_channel(MDB_txn *txn, struct ptv_epg_render *r,
			   const struct ptv_lineup_channel *c)
{
	struct ptv_buf *b = &r->raw;
	const char *icon = c->logo && is_http_url(c->logo) ? c->logo : "";
	struct epg_gchan g;
	uint32_t gkey;

	if (!icon[0] && (gkey = chan_gkey(txn, r, c)) && !epg_gchan_get(txn, r->s, gkey, &g) &&
	    is_http_url(g.icon))
		icon = g.icon; /* the playlist had no logo: the guide's */
	put(b, "  <channel id=\"");
	esc(b, c->number);
	put(b, "\">\n");
	elem(b, "    ", "display-name", NULL, NULL, c->name && c->name[0] ? c->name : c->number);
	elem(b, "    ", "display-name", NULL, NULL, c->number);
	if (icon[0]) {
		put(b, "    <icon");
		attr(b, "src", icon);
		put(b, " />\n");
	}
	put(b, "  </channel>\n");
}

/* ---- programmes ---- */

static void render_slots(struct ptv_buf *b, const char *name, const struct epg_rec_field *f,
			 const char *const *slots, unsigned n)
{
	put(b, "    <");
	put(b, name);
	put(b, ">\n");
	for (unsigned i = 0; i < n; i++) {
		if (epg_field_str(f, i)[0])
			elem(b, "      ", slots[i], NULL, NULL, epg_field_str(f, i));
	}
	put(b, "    </");
	put(b, name);
	put(b, ">\n");
}

static void render_rating(struct ptv_buf *b, const char *name, const struct epg_rec_field *f)
{
	put(b, "    <");
	put(b, name);
	attr(b, "system", epg_field_str(f, 0));
	put(b, ">\n");
	elem(b, "      ", "value", NULL, NULL, epg_field_str(f, 1));
	for (unsigned i = 2; epg_field_str(f, i)[0]; i++) {
		put(b, "      <icon");
		attr(b, "src", epg_field_str(f, i));
		put(b, " />\n");
	}
	put(b, "    </");
	put(b, name);
	put(b, ">\n");
}

static void render_credit(struct ptv_buf *b, const struct epg_rec_field *f)
{
	const char *name = f->sub < EPG_C_COUNT ? epg_credit_names[f->sub] : "guest";

	put(b, "      <");
	put(b, name);
	attr(b, "role", epg_field_str(f, 1));
	attr(b, "guest", epg_field_str(f, 2));
	ptv_buf_putc(b, '>');
	esc(b, epg_field_str(f, 0));
	put(b, "</");
	put(b, name);
	put(b, ">\n");
}

static void render_attrs_text(struct ptv_buf *b, const char *name, const struct epg_rec_field *f,
			      const char *const *anames, unsigned n)
{
	put(b, "    <");
	put(b, name);
	for (unsigned i = 0; i < n; i++)
		attr(b, anames[i], epg_field_str(f, i));
	ptv_buf_putc(b, '>');
	esc(b, epg_field_str(f, n));
	put(b, "</");
	put(b, name);
	put(b, ">\n");
}

static void render_field(struct ptv_buf *b, const struct epg_rec_field *f)
{
	static const char *const video[] = {"present", "colour", "aspect", "quality"};
	static const char *const audio[] = {"present", "stereo"};
	static const char *const review[] = {"type", "source", "reviewer", "lang"};
	static const char *const image[] = {"type", "size", "orient", "system"};
	const char *name = f->type < EPG_F_COUNT ? epg_field_names[f->type] : NULL;

	switch (f->type) {
	case EPG_F_DATE:
		elem(b, "    ", name, NULL, NULL, epg_field_str(f, 0));
		break;
	case EPG_F_LENGTH:
		elem(b, "    ", name, "units", epg_field_str(f, 0), epg_field_str(f, 1));
		break;
	case EPG_F_ICON:
		put(b, "    <icon");
		attr(b, "src", epg_field_str(f, 0));
		attr(b, "width", epg_field_str(f, 1));
		attr(b, "height", epg_field_str(f, 2));
		put(b, " />\n");
		break;
	case EPG_F_URL:
	case EPG_F_EPISODE_NUM:
		elem(b, "    ", name, "system", epg_field_str(f, 0), epg_field_str(f, 1));
		break;
	case EPG_F_VIDEO:
		render_slots(b, name, f, video, 4);
		break;
	case EPG_F_AUDIO:
		render_slots(b, name, f, audio, 2);
		break;
	case EPG_F_PREVIOUSLY_SHOWN:
		/* Its channel attribute names the provider's channel, not ours: left out. */
		elem(b, "    ", name, "start", epg_field_str(f, 0), "");
		break;
	case EPG_F_NEW:
		put(b, "    <new />\n");
		break;
	case EPG_F_SUBTITLES:
		put(b, "    <subtitles");
		attr(b, "type", epg_field_str(f, 0));
		if (!epg_field_str(f, 2)[0]) {
			put(b, " />\n");
			break;
		}
		put(b, ">\n");
		elem(b, "      ", "language", "lang", epg_field_str(f, 1), epg_field_str(f, 2));
		put(b, "    </subtitles>\n");
		break;
	case EPG_F_RATING:
	case EPG_F_STAR_RATING:
		render_rating(b, name, f);
		break;
	case EPG_F_REVIEW:
		render_attrs_text(b, name, f, review, 4);
		break;
	case EPG_F_IMAGE:
		render_attrs_text(b, name, f, image, 4);
		break;
	default:
		if (name) /* lang + text */
			elem(b, "    ", name, "lang", epg_field_str(f, 0), epg_field_str(f, 1));
	}
}

static void render_fields(struct ptv_buf *b, struct epg_rec *rec, const char *title)
{
	struct epg_rec_field f;
	bool in_credits = false, titled = false;

	while (epg_rec_next(rec, &f)) {
		if (!titled && f.type != EPG_F_TITLE) {
			/* The DTD wants a title: an untitled programme gets the channel name. */
			elem(b, "    ", "title", NULL, NULL, title);
		}
		titled = true;
		if (in_credits && f.type != EPG_F_CREDIT) {
			put(b, "    </credits>\n");
			in_credits = false;
		}
		if (f.type == EPG_F_CREDIT) {
			if (!in_credits)
				put(b, "    <credits>\n");
			in_credits = true;
			render_credit(b, &f);
			continue;
		}
		render_field(b, &f);
	}
	if (in_credits)
		put(b, "    </credits>\n");
	if (!titled)
		elem(b, "    ", "title", NULL, NULL, title);
}

static void prog_open(struct ptv_buf *b, const struct ptv_lineup_channel *c, int64_t start,
		      int64_t stop)
{
	char ts[21];

	put(b, "  <programme start=\"");
	epg_format_time(start, ts);
	put(b, ts);
	put(b, "\" stop=\"");
	epg_format_time(stop, ts);
	put(b, ts);
	put(b, "\" channel=\"");
	esc(b, c->number);
	put(b, "\">\n");
}

static const char *chan_title(const struct ptv_lineup_channel *c)
{
	return c->name && c->name[0] ? c->name : c->number;
}

static void render_programme(struct ptv_epg_render *r, const struct ptv_lineup_channel *c,
			     int64_t start, const MDB_val *v)
{
	int64_t shift = (int64_t)(c->shift_hours * 3600.0);
	struct epg_rec rec;

	if (epg_rec_open(v->mv_data, v->mv_size, &rec))
		return;
	prog_open(&r->raw, c, start + shift, start + shift + rec.duration);
	render_fields(&r->raw, &rec, chan_title(c));
	put(&r->raw, "  </programme>\n");
	r->rendered++;
}

/* Positions @cur on the first programme of @gkey still running at @from (store time). */
static int seek_window(MDB_cursor *cur, uint32_t gkey, uint64_t from, MDB_val *k, MDB_val *v)
{
	uint8_t key[EPG_PKEY_LEN];
	struct epg_rec rec;
	int rc;

	epg_pkey(key, gkey, from);
	*k = (MDB_val){sizeof(key), key};
	rc = mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
	if (rc && rc != MDB_NOTFOUND)
		return rc;
	/* The programme before may still be running at @from (overlaps were cut at import). */
	rc = mdb_cursor_get(cur, k, v, rc ? MDB_LAST : MDB_PREV);
	if (!rc && k->mv_size == EPG_PKEY_LEN && epg_pkey_gkey(k->mv_data) == gkey &&
	    !epg_rec_open(v->mv_data, v->mv_size, &rec) &&
	    epg_pkey_start(k->mv_data) + rec.duration > from)
		return 0;
	epg_pkey(key, gkey, from);
	*k = (MDB_val){sizeof(key), key};
	return mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
}

/* Renders programmes of channel @c until @budget; returns 1 when the channel is finished. */
static int render_real(MDB_txn *txn, struct ptv_epg_render *r, const struct ptv_lineup_channel *c,
		       size_t budget)
{
	int64_t shift = (int64_t)(c->shift_hours * 3600.0);
	uint32_t gkey = chan_gkey(txn, r, c);
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if (!gkey)
		return 1;
	rc = mdb_cursor_open(txn, ptv_store_dbi(r->s, PTV_DB_PROGRAMMES), &cur);
	if (rc)
		return ptv_store_err(rc);
	if (r->in_channel) {
		uint8_t key[EPG_PKEY_LEN];

		epg_pkey(key, gkey, r->next_start);
		k = (MDB_val){sizeof(key), key};
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	} else {
		int64_t from = r->window_start - shift;

		rc = seek_window(cur, gkey, from > 0 ? (uint64_t)from : 0, &k, &v);
	}
	for (; !rc && k.mv_size == EPG_PKEY_LEN && epg_pkey_gkey(k.mv_data) == gkey;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (r->raw.len >= budget) {
			r->in_channel = true;
			r->next_start = epg_pkey_start(k.mv_data);
			mdb_cursor_close(cur);
			return 0;
		}
		render_programme(r, c, (int64_t)epg_pkey_start(k.mv_data), &v);
	}
	mdb_cursor_close(cur);
	return rc && rc != MDB_NOTFOUND ? ptv_store_err(rc) : 1;
}

/* Dummy blocks for a channel without programmes: titled with its name, aligned to blocks. */
static int render_dummy(struct ptv_epg_render *r, const struct ptv_lineup_channel *c, size_t budget)
{
	int64_t block = r->o.dummy_block_s, end = r->now + r->o.dummy_span_s;
	int64_t t = r->dummy && r->in_channel ? (int64_t)r->next_start : r->now / block * block;

	for (; t < end; t += block) {
		if (r->raw.len >= budget) {
			r->in_channel = r->dummy = true;
			r->next_start = (uint64_t)t;
			return 0;
		}
		prog_open(&r->raw, c, t, t + block);
		elem(&r->raw, "    ", "title", NULL, NULL, chan_title(c));
		put(&r->raw, "  </programme>\n");
	}
	return 1;
}

static int render_programmes(MDB_txn *txn, struct ptv_epg_render *r, size_t budget)
{
	int ret = 1;

	for (; r->ch < r->l->n_channels; r->ch++) {
		const struct ptv_lineup_channel *c = &r->l->channels[r->ch];

		if (!c->enabled)
			continue;
		if (!r->dummy) {
			ret = render_real(txn, r, c, budget);
			if (ret <= 0)
				return ret;
			r->in_channel = false;
		}
		if (!r->rendered && r->o.dummy) {
			ret = render_dummy(r, c, budget);
			if (ret <= 0)
				return ret;
		}
		r->in_channel = r->dummy = false;
		r->rendered = 0;
	}
	return 1;
}

static void render_head(struct ptv_epg_render *r)
{
	put(&r->raw, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		     "<!DOCTYPE tv SYSTEM \"xmltv.dtd\">\n"
		     "<tv source-info-name=\"PlexTV\" generator-info-name=\"PlexTV/" PTV_VERSION
		     "\" generator-info-url=\"https://github.com/plextv/plextv\">\n");
}

struct step_ctx {
	struct ptv_epg_render *r;
	size_t budget;
};

static int step_txn(MDB_txn *txn, void *arg)
{
	struct step_ctx *sc = arg;
	struct ptv_epg_render *r = sc->r;
	int ret;

	while (r->raw.len < sc->budget && r->phase != RP_DONE) {
		switch (r->phase) {
		case RP_HEAD:
			render_head(r);
			r->phase = RP_CHANNELS;
			break;
		case RP_CHANNELS:
			for (; r->ch < r->l->n_channels && r->raw.len < sc->budget; r->ch++) {
				if (r->l->channels[r->ch].enabled)
					render_channel(txn, r, &r->l->channels[r->ch]);
			}
			if (r->ch == r->l->n_channels) {
				r->ch = 0;
				r->phase = RP_PROGRAMMES;
			}
			break;
		case RP_PROGRAMMES:
			ret = render_programmes(txn, r, sc->budget);
			if (ret < 0)
				return ret;
			if (ret)
				r->phase = RP_TAIL;
			break;
		default:
			put(&r->raw, "</tv>\n");
			r->phase = RP_DONE;
		}
	}
	return r->raw.oom ? -ENOMEM : 0;
}

static int deflate_into(struct ptv_epg_render *r, struct ptv_buf *out)
{
	int flush = r->phase == RP_DONE ? Z_FINISH : Z_NO_FLUSH, zr;

	r->z.next_in = (Bytef *)r->raw.data;
	r->z.avail_in = (uInt)r->raw.len;
	do {
		if (ptv_buf_reserve(out, EPG_ZCHUNK))
			return -ENOMEM;
		r->z.next_out = (Bytef *)out->data + out->len;
		r->z.avail_out = EPG_ZCHUNK;
		zr = deflate(&r->z, flush);
		if (zr == Z_STREAM_ERROR)
			return -EIO;
		out->len += EPG_ZCHUNK - r->z.avail_out;
	} while (r->z.avail_out == 0 || (flush == Z_FINISH && zr != Z_STREAM_END));
	ptv_buf_reset(&r->raw);
	return 0;
}

int ptv_epg_render_step(struct ptv_epg_render *r, struct ptv_buf *out, size_t budget)
{
	struct step_ctx sc = {r, budget};
	int ret;

	if (r->phase == RP_DONE)
		return 1;
	if (!r->gzip) {
		/* Render straight into the caller's buffer. */
		struct ptv_buf keep = r->raw;

		r->raw = *out;
		sc.budget = out->len + budget;
		ret = ptv_store_read(r->s, step_txn, &sc);
		*out = r->raw;
		r->raw = keep;
	} else {
		ret = ptv_store_read(r->s, step_txn, &sc);
		if (!ret)
			ret = deflate_into(r, out);
	}
	if (ret)
		return ret;
	return r->phase == RP_DONE;
}

static struct ptv_lineup empty_lineup;

int ptv_epg_render_new(struct ptv_store *s, struct ptv_lineup *lineup, const struct ptv_epg_opts *o,
		       int64_t now, bool gzip, struct ptv_epg_render **out)
{
	struct ptv_epg_render *r = ptv_xcalloc(1, sizeof(*r));

	r->s = s;
	r->l = lineup ? ptv_lineup_ref(lineup) : NULL;
	r->o = *o;
	if (!r->o.dummy_block_s)
		r->o.dummy_block_s = 3600;
	r->now = now;
	r->window_start = now - (int64_t)o->retention_s;
	r->gzip = gzip;
	if (gzip) {
		if (deflateInit2(&r->z, EPG_GZIP_LEVEL, Z_DEFLATED, 15 + 16, 8,
				 Z_DEFAULT_STRATEGY) != Z_OK) {
			ptv_epg_render_free(r);
			return -ENOMEM;
		}
		r->z_ready = true;
	}
	if (!r->l)
		r->l = &empty_lineup; /* no snapshot yet: a valid, empty guide */
	*out = r;
	return 0;
}

void ptv_epg_render_free(struct ptv_epg_render *r)
{
	if (!r)
		return;
	if (r->z_ready)
		deflateEnd(&r->z);
	if (r->l != &empty_lineup)
		ptv_lineup_unref(r->l);
	ptv_buf_free(&r->raw);
	free(r);
}
