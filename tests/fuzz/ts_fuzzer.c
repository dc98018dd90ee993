/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * libFuzzer driver for MPEG-TS inspection and the continuity rewrite (ts.h), the code every
 * packet from an ingest child goes through on the relay's reactor.
 *
 * Input: two control bytes, then 188-byte packets (a partial last packet is dropped; the sync
 * byte is forced, as the relay checks it before calling). Control byte 0: the input restarts
 * (ptv_ts_state_restart, a new ingest child) before every Nth packet, N = byte & 0x3f (0:
 * never). Control byte 1: milliseconds between packets, for the PCR extrapolation.
 * Checked besides crashes:
 *  - ptv_ts_process() changes nothing but the continuity counter and, when it reports
 *    PTV_TS_F_DISC, the discontinuity_indicator;
 *  - output counters are continuous per PID across restarts wherever the input was (no
 *    PTV_TS_F_CC_ERR, no discontinuity_indicator): +1 or a duplicate with payload, unchanged
 *    without;
 *  - PTV_TS_F_KEY only after a PAT and a PMT; learnt PIDs are valid; the cached PAT/PMT
 *    packets are the ones reported;
 *  - ptv_ts_payload() stays inside the packet.
 * Seeds: the first packets of the files in $PTV_SHARED_DATA/ts behind two control bytes.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plextv/ts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_pid(int pid)
{
	if (pid < -1 || pid >= (int)PTV_TS_PIDS)
		abort();
}

static void check_packet_helpers(const uint8_t *p)
{
	size_t off = 0, len = ptv_ts_payload(p, &off);
	uint64_t pcr;

	if (len && (off < 4 || off + len != PTV_TS_PKT))
		abort();
	ptv_ts_pcr(p, &pcr);
	if (ptv_ts_pusi(p)) {
		for (int c = PTV_TS_CODEC_NONE; c <= PTV_TS_CODEC_OTHER; c++)
			ptv_ts_pes_is_key(p, (enum ptv_ts_codec)c);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Per PID: bit 4 = written before, bits 0-3 = last output counter (the driver's model). */
	static uint8_t model[PTV_TS_PIDS];
	static struct ptv_ts_state st;
	unsigned every, step_ms, k = 0;
	uint64_t now = 1000;

	if (size < 2)
		return 0;
	every = data[0] & 0x3f;
	step_ms = data[1];
	data += 2;
	size -= 2;
	ptv_ts_state_init(&st);
	memset(model, 0, sizeof(model));
	for (; size >= PTV_TS_PKT; data += PTV_TS_PKT, size -= PTV_TS_PKT, k++) {
		uint8_t pkt[PTV_TS_PKT], in[PTV_TS_PKT];
		unsigned flags, pid, cc;

		if (every && k && k % every == 0)
			ptv_ts_state_restart(&st);
		memcpy(pkt, data, PTV_TS_PKT);
		pkt[0] = PTV_TS_SYNC;
		memcpy(in, pkt, PTV_TS_PKT);
		check_packet_helpers(pkt);
		now += step_ms;
		flags = ptv_ts_process(&st, pkt, now);
		pid = ptv_ts_pid(in);

		/* Only the counter, and the discontinuity flag when reported, may change. */
		if ((pkt[3] & 0xf0) != (in[3] & 0xf0) || memcmp(pkt, in, 3) ||
		    memcmp(pkt + 6, in + 6, PTV_TS_PKT - 6) || pkt[4] != in[4])
			abort();
		if (pkt[5] != in[5] && (!(flags & PTV_TS_F_DISC) || pkt[5] != (in[5] | 0x80)))
			abort();
		if (pid == PTV_TS_PID_NULL) {
			if (flags || pkt[3] != in[3])
				abort();
			continue;
		}
		cc = ptv_ts_cc(pkt);
		if ((model[pid] & 0x10) && !(flags & PTV_TS_F_CC_ERR) &&
		    !ptv_ts_discontinuity(in)) {
			unsigned d = (cc - (model[pid] & 0x0f)) & 0x0f;

			if (ptv_ts_has_payload(in) ? d > 1 : d != 0)
				abort();
		}
		model[pid] = (uint8_t)(0x10 | cc);

		if ((flags & PTV_TS_F_KEY) && (!st.have_pat || !st.have_pmt))
			abort();
		if ((flags & PTV_TS_F_PAT) && (!st.have_pat || memcmp(st.pat, pkt, PTV_TS_PKT)))
			abort();
		if ((flags & PTV_TS_F_PMT) && (!st.have_pmt || memcmp(st.pmt, pkt, PTV_TS_PKT)))
			abort();
		if (st.pat_n > PTV_TS_PROGRAMS)
			abort();
		check_pid(st.pmt_pid);
		check_pid(st.video_pid);
		check_pid(st.audio_pid);
		check_pid(st.pcr_pid);
		check_packet_helpers(pkt);
	}
	return 0;
}
