// Numbers, amounts and times as people read them.

const SATS = new Intl.NumberFormat('en-US', { maximumFractionDigits: 3 });

/** "1,234 sats" (or "1 sat"). */
export function sats(n: number): string {
  return `${SATS.format(n)} ${n === 1 ? 'sat' : 'sats'}`;
}

/** msat as sats, with up to 3 decimals when not whole. */
export function msatToSats(msat: number): string {
  return sats(msat / 1000);
}

export function dateTime(unixSecs: number): string {
  return new Date(unixSecs * 1000).toLocaleString(undefined, {
    dateStyle: 'medium',
    timeStyle: 'short',
  });
}

/** "in 59 minutes", "in 2 hours", "3 days ago". */
export function relative(unixSecs: number, nowMs = Date.now()): string {
  const diff = unixSecs - Math.floor(nowMs / 1000);
  const abs = Math.abs(diff);
  const [value, unit] =
    abs < 90
      ? [Math.round(abs), 'second']
      : abs < 90 * 60
        ? [Math.round(abs / 60), 'minute']
        : abs < 36 * 3600
          ? [Math.round(abs / 3600), 'hour']
          : [Math.round(abs / 86_400), 'day'];
  const text = `${value} ${unit}${value === 1 ? '' : 's'}`;
  return diff >= 0 ? `in ${text}` : `${text} ago`;
}

/** "per day", "per week", "per 30 days", "in total". */
export function perPeriod(periodSecs: number): string {
  if (periodSecs === 0) return 'in total';
  if (periodSecs === 86_400) return 'per day';
  if (periodSecs === 7 * 86_400) return 'per week';
  if (periodSecs === 30 * 86_400) return 'per month (30 days)';
  if (periodSecs % 86_400 === 0) return `per ${periodSecs / 86_400} days`;
  if (periodSecs % 3600 === 0) return `per ${periodSecs / 3600} hours`;
  return `per ${periodSecs} seconds`;
}

/** Parses a whole, positive number of sats typed by a person ("1,000" and "1 000" accepted). */
export function parseSats(text: string): number | null {
  const t = text.replace(/[\s,_]/g, '');
  if (!/^\d{1,15}$/.test(t)) return null;
  const n = Number(t);
  return Number.isSafeInteger(n) ? n : null;
}
