/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The HDHomeRun documents of each virtual device (PROTOCOLS.md §1), rendered once per snapshot.
 * Field names and JSON types are what Plex, Jellyfin and libhdhomerun expect: TunerCount is an
 * integer, GuideNumber a string, and no storage fields (they would mark a DVR device).
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "lineup_int.h"
#include "plextv/device.h"

static struct ptv_blob *blob_from_json(json_t *j)
{
	size_t n = json_dumpb(j, NULL, 0, JSON_COMPACT);
	struct ptv_blob *b = ptv_blob_new(NULL, n);

	if (b)
		json_dumpb(j, b->data, n, JSON_COMPACT);
	json_decref(j);
	return b;
}

static struct ptv_blob *render_discover(const struct ptv_lineup_device *d)
{
	char lineup_url[600];

	snprintf(lineup_url, sizeof(lineup_url), "%s/lineup.json", d->base_url);
	return blob_from_json(json_pack(
		"{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i}", "FriendlyName",
		d->friendly_name, "Manufacturer", "Silicondust", "ModelNumber", "HDTC-2US",
		"FirmwareName", "hdhomeruntc_atsc", "FirmwareVersion", "20200101", "DeviceID",
		d->id.device_id_hex, "DeviceAuth", d->id.auth, "BaseURL", d->base_url, "LineupURL",
		lineup_url, "TunerCount", (int)d->tuners));
}

static void stream_url(const struct ptv_lineup_device *d, const struct ptv_lineup_channel *ch,
		       char *buf, size_t len)
{
	snprintf(buf, len, "%s/auto/v%s", d->base_url, ch->number);
}

static struct ptv_blob *render_lineup_json(const struct ptv_lineup *l,
					   const struct ptv_lineup_device *d, bool all)
{
	json_t *arr = json_array();
	char url[700];

	for (size_t i = d->first; i < d->first + d->count; i++) {
		const struct ptv_lineup_channel *ch = &l->channels[i];
		json_t *o;

		if (!ch->enabled && !all)
			continue;
		stream_url(d, ch, url, sizeof(url));
		o = json_pack("{s:s, s:s, s:s}", "GuideNumber", ch->number, "GuideName", ch->name,
			      "URL", url);
		/* Real devices leave flags out when they are 0. */
		if (ch->hd)
			json_object_set_new(o, "HD", json_integer(1));
		if (ch->drm)
			json_object_set_new(o, "DRM", json_integer(1));
		if (all && !ch->enabled)
			json_object_set_new(o, "Enabled", json_integer(0));
		json_array_append_new(arr, o);
	}
	return blob_from_json(arr);
}

/* M3U output is written strictly: no CR/LF anywhere, no '"' inside attribute values. */
static void m3u_attr(struct ptv_buf *b, const char *key, const char *val)
{
	ptv_buf_printf(b, " %s=\"", key);
	for (const char *s = val; *s; s++) {
		if (*s == '\r' || *s == '\n')
			ptv_buf_putc(b, ' ');
		else if (*s == '"')
			ptv_buf_putc(b, '\'');
		else
			ptv_buf_putc(b, *s);
	}
	ptv_buf_putc(b, '"');
}

static void m3u_text(struct ptv_buf *b, const char *val)
{
	for (const char *s = val; *s; s++)
		ptv_buf_putc(b, *s == '\r' || *s == '\n' ? ' ' : *s);
}

static void render_m3u_channels(struct ptv_buf *b, const struct ptv_lineup *l,
				const struct ptv_lineup_device *d)
{
	char url[700];

	for (size_t i = d->first; i < d->first + d->count; i++) {
		const struct ptv_lineup_channel *ch = &l->channels[i];

		if (!ch->enabled)
			continue;
		ptv_buf_puts(b, "#EXTINF:-1");
		m3u_attr(b, "channel-id", ch->number);
		m3u_attr(b, "channel-number", ch->number);
		m3u_attr(b, "tvg-chno", ch->number);
		/* The guide's channel ids are GuideNumbers (xmltv.xml), so tvg-id is one too. */
		m3u_attr(b, "tvg-id", ch->number);
		m3u_attr(b, "tvg-name", ch->name);
		if (ch->logo[0])
			m3u_attr(b, "tvg-logo", ch->logo);
		if (ch->group[0])
			m3u_attr(b, "group-title", ch->group);
		ptv_buf_putc(b, ',');
		m3u_text(b, ch->name);
		stream_url(d, ch, url, sizeof(url));
		ptv_buf_printf(b, "\n%s\n", url);
	}
}

static struct ptv_blob *render_m3u(const struct ptv_lineup *l, const char *base_url,
				   const struct ptv_lineup_device *devs, unsigned n)
{
	struct ptv_buf b = {0};

	ptv_buf_printf(&b, "#EXTM3U url-tvg=\"%s/xmltv.xml\" x-tvg-url=\"%s/xmltv.xml\"\n",
		       base_url, base_url);
	for (unsigned i = 0; i < n; i++)
		render_m3u_channels(&b, l, &devs[i]);
	return ptv_blob_from_buf(&b);
}

static void xml_text(struct ptv_buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<':
			ptv_buf_puts(b, "&lt;");
			break;
		case '>':
			ptv_buf_puts(b, "&gt;");
			break;
		case '&':
			ptv_buf_puts(b, "&amp;");
			break;
		case '"':
			ptv_buf_puts(b, "&quot;");
			break;
		case '\'':
			ptv_buf_puts(b, "&apos;");
			break;
		default:
			/* Control characters are not allowed in XML 1.0. */
			if ((unsigned char)*s >= 0x20 || *s == '\t')
				ptv_buf_putc(b, *s);
		}
	}
}

static struct ptv_blob *render_lineup_xml(const struct ptv_lineup *l,
					  const struct ptv_lineup_device *d)
{
	struct ptv_buf b = {0};
	char url[700];

	ptv_buf_puts(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<Lineup>");
	for (size_t i = d->first; i < d->first + d->count; i++) {
		const struct ptv_lineup_channel *ch = &l->channels[i];

		if (!ch->enabled)
			continue;
		stream_url(d, ch, url, sizeof(url));
		ptv_buf_puts(&b, "<Program><GuideNumber>");
		xml_text(&b, ch->number);
		ptv_buf_puts(&b, "</GuideNumber><GuideName>");
		xml_text(&b, ch->name);
		ptv_buf_puts(&b, "</GuideName><URL>");
		xml_text(&b, url);
		ptv_buf_puts(&b, "</URL></Program>");
	}
	ptv_buf_puts(&b, "</Lineup>\n");
	return ptv_blob_from_buf(&b);
}

static struct ptv_blob *render_device_xml(const struct ptv_lineup_device *d)
{
	struct ptv_buf b = {0};

	ptv_buf_puts(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
			 "<root xmlns=\"urn:schemas-upnp-org:device-1-0\">\n"
			 "  <specVersion><major>1</major><minor>0</minor></specVersion>\n"
			 "  <URLBase>");
	xml_text(&b, d->base_url);
	ptv_buf_puts(&b, "</URLBase>\n  <device>\n"
			 "    <deviceType>urn:schemas-upnp-org:device:MediaServer:1</deviceType>\n"
			 "    <friendlyName>");
	xml_text(&b, d->friendly_name);
	ptv_buf_printf(
		&b,
		"</friendlyName>\n    <manufacturer>Silicondust</manufacturer>\n"
		"    <modelName>HDTC-2US</modelName>\n    <modelNumber>HDTC-2US</modelNumber>\n"
		"    <serialNumber>%s</serialNumber>\n    <UDN>uuid:%s</UDN>\n"
		"  </device>\n</root>\n",
		d->id.device_id_hex, d->id.uuid);
	return ptv_blob_from_buf(&b);
}

static int device_render(const struct ptv_lineup *l, struct ptv_lineup_device *d)
{
	d->discover_json = render_discover(d);
	d->lineup_json = render_lineup_json(l, d, false);
	d->lineup_json_all = render_lineup_json(l, d, true);
	d->lineup_m3u = render_m3u(l, d->base_url, d, 1);
	d->lineup_xml = render_lineup_xml(l, d);
	d->device_xml = render_device_xml(d);
	if (!d->discover_json || !d->lineup_json || !d->lineup_json_all || !d->lineup_m3u ||
	    !d->lineup_xml || !d->device_xml)
		return -ENOMEM;
	return 0;
}

int lineup_devices_build(const struct lineup_build_opts *o, struct ptv_lineup *l)
{
	unsigned max = o->device_max ? o->device_max : 479;
	unsigned n = l->n_channels ? (unsigned)((l->n_channels + max - 1) / max) : 1;
	struct ptv_device_identity *ids = ptv_xcalloc(n, sizeof(*ids));
	int ret;

	l->devices = ptv_xcalloc(n, sizeof(*l->devices));
	l->n_devices = n;
	ret = ptv_device_identities(o->store, n, ids);
	for (unsigned i = 0; i < n && !ret; i++) {
		struct ptv_lineup_device *d = &l->devices[i];

		d->id = ids[i];
		if (i == 0) {
			snprintf(d->friendly_name, sizeof(d->friendly_name), "%s",
				 o->friendly_name);
			snprintf(d->base_url, sizeof(d->base_url), "%s", o->base_url);
		} else {
			snprintf(d->friendly_name, sizeof(d->friendly_name), "%s %u",
				 o->friendly_name, i + 1);
			snprintf(d->base_url, sizeof(d->base_url), "%s/devices/%u", o->base_url, i);
		}
		d->tuners = o->tuners;
		d->first = (size_t)i * max;
		d->count = PTV_MIN((size_t)max, l->n_channels - d->first);
		if (!l->n_channels)
			d->count = 0;
		for (size_t c = d->first; c < d->first + d->count; c++)
			l->channels[c].device = i;
		ret = device_render(l, d);
	}
	free(ids);
	if (!ret) {
		l->all_m3u = render_m3u(l, o->base_url, l->devices, l->n_devices);
		if (!l->all_m3u)
			ret = -ENOMEM;
	}
	return ret;
}
