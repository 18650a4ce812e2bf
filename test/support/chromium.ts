import { existsSync } from 'node:fs';

/** Debian's chromium, for the console tests in headless Chromium; `.ci/run` installs it where apt is usable. */
export const CHROMIUM = process.env.RELAYMQ_TEST_CHROMIUM ?? '/usr/bin/chromium';
export const hasChromium = existsSync(CHROMIUM);
/** Flags of every headless Chromium the tests launch. */
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
