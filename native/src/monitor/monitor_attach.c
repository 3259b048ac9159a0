/*
 * The attach FIFO's records (monitor.h). Pure: the monitor's loop reads the FIFO into a
 * buffer and takes whole records from it with this.
 */
#include <stddef.h>

#include "monitor.h"

long sl_attach_next(const unsigned char *buf, size_t len, struct sl_attach_rec *r)
{
	if (len < SL_ATTACH_HDR)
		return 0;
	size_t plen = (size_t)buf[2] | (size_t)buf[3] << 8;
	char type = (char)buf[0];
	int ok = buf[1] == 0 && ((type == 'd' && plen >= 1 && plen <= SL_ATTACH_DATA_MAX) || (type == 'e' && plen == 0) ||
				 (type == 'r' && plen == 4));
	if (!ok)
		return -1;
	if (len < SL_ATTACH_HDR + plen)
		return 0;
	r->type = type;
	r->len = plen;
	r->data = buf + SL_ATTACH_HDR;
	return (long)(SL_ATTACH_HDR + plen);
}
