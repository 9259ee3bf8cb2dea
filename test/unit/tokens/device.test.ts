import { describe, expect, it } from 'vitest';
import { describeDevice, deviceCode } from '../../../src/tokens/device.js';

/** The device label that replaces the raw user agent in the session store. */

const UA = {
  firefoxLinux: 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
  chromeWindows:
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
  safariIphone:
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
  safariIpad:
    'Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
  chromeAndroid:
    'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36',
  edgeMac:
    'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0',
  googlebot: 'Googlebot/2.1 (+http://www.google.com/bot.html)',
};

describe('device labels', () => {
  it.each([
    [UA.firefoxLinux, 'Firefox on Linux', 'desktop'],
    [UA.chromeWindows, 'Chrome on Windows', 'desktop'],
    [UA.safariIphone, 'Safari on iOS', 'mobile'],
    [UA.safariIpad, 'Safari on iOS', 'tablet'],
    [UA.chromeAndroid, 'Chrome on Android', 'mobile'],
    [UA.edgeMac, 'Microsoft Edge on macOS', 'desktop'],
    [UA.googlebot, 'Googlebot', 'bot'],
    ['curl/8.4.0', 'curl', 'unknown'],
    ['okhttp/4.12.0', 'okhttp', 'unknown'],
  ])('labels %s as %s (%s)', (userAgent, label, type) => {
    const code = deviceCode(userAgent);
    expect(code.length).toBeLessThanOrEqual(70);
    expect(describeDevice(code)).toMatchObject({ label, type });
  });

  it('stores far fewer bytes than the user agent, and nothing of it but names', () => {
    const code = deviceCode(UA.chromeWindows);
    expect(code).toBe('Chrome|Windows|desktop');
    expect(code.length).toBeLessThan(UA.chromeWindows.length / 4);
    expect(describeDevice(code)).toEqual({
      label: 'Chrome on Windows',
      browser: 'Chrome',
      os: 'Windows',
      type: 'desktop',
    });
  });

  it('labels a session recorded before labels existed from its raw user agent', () => {
    expect(describeDevice(UA.firefoxLinux)).toEqual({
      label: 'Firefox on Linux',
      browser: 'Firefox',
      os: 'Linux',
      type: 'desktop',
    });
  });

  it('has nothing for an empty user agent, and keeps hostile ones short, printable and separator-free', () => {
    expect(deviceCode('')).toBe('');
    expect(describeDevice('')).toBeUndefined();
    for (const hostile of ['a|b|c|desktop'.repeat(50), '\u0000\u202e evil', '日本語/1.0', '|||']) {
      const info = describeDevice(deviceCode(hostile));
      if (info === undefined) continue;
      expect(info.label.length).toBeLessThanOrEqual(64);
      expect(info.label).toMatch(/^[\x20-\x7E]*$/);
      expect(info.label).not.toContain('|');
    }
    expect(describeDevice(deviceCode('???'))).toMatchObject({ label: '???', type: 'unknown' });
  });
});
