// Parallel corpora on the real data: the Bible (KJV ↔ Reina-Valera 1909 SWORD modules) and the Debian
// handbook (Debian packages that scripts/setup installs), and users' TSV/JSONL pairs with every error.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PARALLEL_SOURCES, prepareParallelCorpus } from '../lib/data/builtin/parallel';
import { loadParallelCorpus, ParallelCorpus } from '../lib/data/parallel';
import { ParallelSplit } from '../lib/data/pairs';
import { BIBLE_TEST_BOOKS, BIBLE_VALID_BOOKS, smallCapsTruecaser, spanishJoinsAdded } from '../lib/data/builtin/bible';
import { HANDBOOK_TEST_CHAPTERS, HANDBOOK_VALID_CHAPTERS, handbookPairs, paraBlocks, paraText } from '../lib/data/builtin/handbook';
import { findSwordModule, osisText, readZText, strongsNumbers } from '../lib/data/builtin/sword';
import { installedVersion } from '../lib/data/builtin/debian';

jest.setTimeout(120_000);

function tmp(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `trainlarge-${name}-`));
}

// Every built-in corpus is prepared into this test's own cache, so the tests see a fresh preparation.
const savedCache = process.env.TRAINLARGE_CACHE;
const cache = tmp('parallel-cache');
beforeAll(() => {
  process.env.TRAINLARGE_CACHE = cache;
});
afterAll(() => {
  if (savedCache === undefined) delete process.env.TRAINLARGE_CACHE;
  else process.env.TRAINLARGE_CACHE = savedCache;
  fs.rmSync(cache, { recursive: true, force: true });
});

/** The pair with this id in any split, as [source, target]. */
function pair(c: ParallelCorpus, id: string): [string, string] | undefined {
  for (const s of [c.train, c.valid, c.test]) {
    const i = s.ids.indexOf(id);
    if (i >= 0) return [s.source[i], s.target[i]];
  }
  return undefined;
}

/** The units (by `unitOf`) of each split; fails when a unit is in two splits. */
function unitsBySplit(c: ParallelCorpus, unitOf: (id: string) => string): Record<'train' | 'valid' | 'test', Set<string>> {
  const out = { train: new Set<string>(), valid: new Set<string>(), test: new Set<string>() };
  const seen = new Map<string, string>();
  for (const s of ['train', 'valid', 'test'] as const) {
    for (const id of c[s].ids) {
      const unit = unitOf(id);
      const other = seen.get(unit);
      if (other !== undefined && other !== s) throw new Error(`${unit} is in ${other} and ${s}`);
      seen.set(unit, s);
      out[s].add(unit);
    }
  }
  return out;
}

const size = (s: ParallelSplit): number => s.ids.length;

describe('bible-en-es', () => {
  let bible: ParallelCorpus;
  beforeAll(async () => {
    bible = await loadParallelCorpus('bible-en-es');
  });

  test('the Debian packages it reads are installed at the measured versions', () => {
    expect(installedVersion('sword-text-kjv')).toBe('14.3-1');
    expect(installedVersion('sword-text-sparv')).toBe('2.60-1');
    expect(installedVersion('no-such-package-here')).toBeUndefined();
  });

  test('readZText reads all 31,102 KJV verses of each module in canonical order', () => {
    const en = readZText(findSwordModule('engKJV2006eb', 'install').dir);
    expect(en).toHaveLength(31_102);
    expect(en[0].ref).toBe('Gen.1.1');
    expect(en[en.length - 1].ref).toBe('Rev.22.21');
    expect(en.find((v) => v.ref === 'Matt.1.1')?.osis).toMatch(/generation/);
    expect(strongsNumbers(en[0].osis)).toEqual(new Set(['H7225', 'H430', 'H1254', 'H8064', 'H853', 'H776']));
    expect(() => findSwordModule('noSuchModule', 'apt-get install x')).toThrow(/noSuchModule not found.*apt-get install x/);
  });

  test('pair counts: ~30,800 verse pairs, whole books in valid and test', () => {
    expect(bible.source).toBe('en');
    expect(bible.target).toBe('es');
    const total = size(bible.train) + size(bible.valid) + size(bible.test);
    expect(total).toBeGreaterThan(30_500);
    expect(total).toBeLessThanOrEqual(31_102);
    expect(size(bible.train)).toBeGreaterThan(28_800);
    expect(size(bible.valid)).toBe(822); // Esther 167 + Ecclesiastes 222 + Romans 433
    expect(size(bible.test)).toBe(879); // Ruth 85 + Daniel 357 + 1 Corinthians 437
    const m = bible.manifest;
    expect(m.splits.train.pairs).toBe(size(bible.train));
    expect(m.splits.valid.units).toBe(3);
    expect(m.checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(m.sources.map((s) => s.debianPackage)).toEqual(['sword-text-kjv', 'sword-text-sparv']);
    expect(m.sources[0]).toMatchObject({ version: '14.3-1', pinned: '14.3-1', files: 7 });
    expect(m.dropped.empty + m.dropped.chapter + m.dropped.shifted + m.dropped.merged).toBe(31_102 - total);
  });

  test('no book has verses in two splits; valid and test are the declared books', () => {
    const units = unitsBySplit(bible, (id) => id.split('.')[0]);
    expect([...units.valid].sort()).toEqual([...BIBLE_VALID_BOOKS].sort());
    expect([...units.test].sort()).toEqual([...BIBLE_TEST_BOOKS].sort());
    expect(units.train.size).toBe(60);
  });

  test('cleaning: Genesis 1:1 and John 3:16 exactly, in both languages', () => {
    expect(pair(bible, 'Gen.1.1')).toEqual([
      'In the beginning God created the heaven and the earth.',
      'En el principio crió Dios los cielos y la tierra.', // 'EN el principio' in the module
    ]);
    expect(pair(bible, 'John.3.16')).toEqual([
      'For God so loved the world, that he gave his only begotten Son, that whosoever believeth in him should not perish, but have everlasting life.',
      'Porque de tal manera amó Dios al mundo, que ha dado á su Hijo unigénito, para que todo aquel que en él cree, no se pierda, mas tenga vida eterna.',
    ]);
  });

  test("cleaning: psalm titles kept, Psalm 119's letters dropped, USFM residue and notes removed", () => {
    expect(pair(bible, 'Ps.3.1')).toEqual([
      'A Psalm of David, when he fled from Absalom his son. LORD, how are they increased that trouble me! many are they that rise up against me.',
      'Salmo de David, cuando huía de delante de Absalom su hijo. ¡Oh Jehová, cuánto se han multiplicado mis enemigos! muchos se levantan contra mí.',
    ]);
    expect(pair(bible, 'Ps.119.1')).toEqual([
      'Blessed are the undefiled in the way, who walk in the law of the LORD.',
      'Bienaventurados los perfectos de camino; los que andan en la ley de Jehová.', // 'ALEPH. BIENAVENTURADOS' in the module
    ]);
    expect(pair(bible, 'Ps.119.9')?.[1]).toBe('¿Con qué limpiará el joven su camino? Con guardar tu palabra.');
    // '\nd JEHOVAH': a USFM marker left in the KJV module's text; the verse's footnote ('Gen 1:4' has one) is dropped.
    expect(pair(bible, 'Exod.6.3')?.[0]).toBe(
      'And I appeared unto Abraham, unto Isaac, and unto Jacob, by the name of God Almighty, but by my name JEHOVAH was I not known to them.',
    );
    expect(pair(bible, 'Gen.1.4')?.[0]).toBe('And God saw the light, that it was good: and God divided the light from the darkness.');
  });

  test('cleaning: the Spanish words glued at added words are split, enclitics kept, small capitals truecased', () => {
    // '<w>Y FUÉ</w><transChange>que</transChange><w>á los treinta</w>' and 'el <transChange>mes</transChange><w>cuarto</w>'
    expect(pair(bible, 'Ezek.1.1')?.[1]).toMatch(/^Y fué que á los treinta años, en el mes cuarto, á cinco del mes,/);
    expect(pair(bible, 'John.9.1')?.[1]).toBe('Y pasando Jesús, vió un hombre ciego desde su nacimiento.');
    expect(pair(bible, 'Gen.19.12')?.[1]).toMatch(/todo lo que tienes en la ciudad, sácalo de este lugar:$/);
    expect(pair(bible, 'Josh.5.4')?.[1]).toMatch(/^Esta es la causa por la cual Josué los circuncidó:/);
    expect(pair(bible, '2Chr.29.1')?.[1]).toMatch(/^Y Ezechîas comenzó á reinar/); // a name keeps its capital
    expect(pair(bible, 'Luke.1.5')?.[1]).toMatch(/^Hubo en los días de Herodes/); // a section start mid-chapter
    expect(pair(bible, 'Ps.147.1')?.[1]).toMatch(/^Alabad á JAH, porque/); // JAH is never written otherwise
    expect(pair(bible, 'Ps.130.3')?.[1]).toMatch(/^JAH, si mirares/);
    expect(pair(bible, 'Judg.11.1')?.[1]).toMatch(/^Existía entonces Jephté/); // 'EXISTÍA' occurs nowhere else
    expect(pair(bible, 'Ps.20.1')?.[1]).toMatch(/^Al Músico principal: Salmo de David\. Oigate Jehová/); // after the title
    expect(pair(bible, 'Exod.6.2')?.[1]).toBe('Habló todavía Dios á Moisés, y díjole: Yo soy JEHOVÁ;'); // mid-verse capitals stay
    expect(spanishJoinsAdded('sáca', 'lo')).toBe(true);
    expect(spanishJoinsAdded('no', 'lo')).toBe(false);
    expect(spanishJoinsAdded('engendró', 'un hijo')).toBe(false);
    const truecase = smallCapsTruecaser(['y dijo que fué así, y fué bueno']);
    expect(truecase('Y FUÉ la tarde', true)).toBe('Y fué la tarde');
    expect(truecase('Y FUÉ la tarde', false)).toBe('Y fué la tarde'); // at the verse start, before a lower-case word
    expect(truecase('dijo: YO SOY', false)).toBe('dijo: YO SOY');
  });

  test('osisText drops notes and headings and keeps the words of tagged text', () => {
    const osis =
      '<title>Heading</title><q who="Jesus">¶ <w lemma="strong:G1063">For</w> <divineName><w lemma="strong:H3068">LORD</w></divineName> ,' +
      '<note placement="foot"><reference>1.1 </reference>a note</note> <transChange type="added">is</transChange><w lemma="strong:G1">good</w>.</q>';
    expect(osisText(osis)).toBe('For LORD, is good.');
  });

  test('no markup, residue or doubled spaces in any pair', () => {
    const texts = [bible.train, bible.valid, bible.test].flatMap((s) => [...s.source, ...s.target]);
    expect(texts.filter((t) => /[<>&\\¶*|]|\s{2}|^\s|\s$|,,/.test(t))).toEqual([]);
    expect(texts.filter((t) => /\p{Ll}\p{Lu}/u.test(t))).toEqual([]); // words glued together ('FUÉque', 'PASANDOJesús')
  });

  test('verses the Spanish module numbers differently are dropped, not paired with the wrong verse', () => {
    // The Reina-Valera puts KJV Jonah 1:17 in 2:1 (the Hebrew numbering): all of Jonah 2 is out of step.
    expect(pair(bible, 'Jonah.1.16')).toBeDefined();
    expect(pair(bible, 'Jonah.1.17')).toBeUndefined();
    expect(bible.train.ids.filter((id) => id.startsWith('Jonah.2.'))).toEqual([]);
    for (const chapter of ['Num.13', 'Num.30', '1Sam.24', 'Hos.12', 'Job.39', 'Job.40']) {
      expect(bible.train.ids.some((id) => id.startsWith(`${chapter}.`))).toBe(false);
    }
    expect(pair(bible, 'Job.41.1')?.[1]).toMatch(/^¿Sacarás tú al leviathán con el anzuelo/);
    expect(bible.manifest.dropped.chapter).toBeGreaterThan(200);
    expect(bible.manifest.dropped.chapter).toBeLessThan(300);
  });

  test('reverse reads Spanish to English', async () => {
    const es = await loadParallelCorpus('bible-en-es', { reverse: true });
    expect([es.source, es.target]).toEqual(['es', 'en']);
    expect(es.train.source).toEqual(bible.train.target);
    expect(es.test.target).toEqual(bible.test.source);
    expect(pair(es, 'Gen.1.1')?.[0]).toBe('En el principio crió Dios los cielos y la tierra.');
  });

  test('maxPairs keeps the first pairs of each split; minChars/maxChars filter both sides', async () => {
    const few = await loadParallelCorpus('bible-en-es', { maxPairs: 100 });
    expect(few.train.ids).toEqual(bible.train.ids.slice(0, 100));
    expect(size(few.test)).toBe(100);
    const short = await loadParallelCorpus('bible-en-es', { minChars: 20, maxChars: 80 });
    for (const s of [short.train, short.valid, short.test]) {
      for (const t of [...s.source, ...s.target]) expect(t.length >= 20 && t.length <= 80).toBe(true);
    }
    const expected = bible.train.ids.filter((_, i) =>
      [bible.train.source[i], bible.train.target[i]].every((t) => t.length >= 20 && t.length <= 80),
    );
    expect(short.train.ids).toEqual(expected);
    expect(short.manifest.splits.train.pairs).toBe(size(bible.train)); // the manifest describes the whole corpus
  });
});

describe('handbook-en-fr (and -de, -es)', () => {
  let fr: ParallelCorpus;
  beforeAll(async () => {
    fr = await loadParallelCorpus('handbook-en-fr');
  });

  test('pair counts: ~2,000 translated paragraphs, whole chapters in valid and test', () => {
    const total = size(fr.train) + size(fr.valid) + size(fr.test);
    expect(total).toBeGreaterThan(1_900);
    expect(total).toBeLessThan(2_100);
    expect(size(fr.valid)).toBeGreaterThan(150);
    expect(size(fr.test)).toBeGreaterThan(150);
    expect(fr.manifest.dropped.untranslated).toBeGreaterThan(900);
    expect(fr.manifest.sources[0]).toMatchObject({ debianPackage: 'debian-handbook', version: '11.20220922', files: 254 });
  });

  test('no chapter has paragraphs in two splits', () => {
    const chapterOf = new Map(handbookPairs('fr').pairs.map((p) => [p.id, p.chapter]));
    const units = unitsBySplit(fr, (id) => chapterOf.get(id) ?? 'missing');
    expect([...units.valid].sort()).toEqual([...HANDBOOK_VALID_CHAPTERS].sort());
    expect([...units.test].sort()).toEqual([...HANDBOOK_TEST_CHAPTERS].sort());
    expect(units.train.has('missing')).toBe(false);
    expect(units.train.size).toBe(17);
  });

  test('paragraphs pair by position; untranslated ones are dropped', () => {
    expect(pair(fr, 'apt.html#0')).toEqual([
      'What makes Debian so popular with administrators is how easily software can be installed and how easily the whole system can be updated. This unique advantage is largely due to the APT program, which Falcot Corp administrators studied with enthusiasm.',
      "Ce qui rend Debian si populaire auprès des administrateurs, c'est la facilité avec laquelle il est possible d'y installer des logiciels et de mettre à jour le système complet. Cet avantage unique est dû en grande partie au programme APT, outil dont les administrateurs de Falcot SA ont étudié avec enthousiasme.",
    ]);
    for (const s of [fr.train, fr.valid, fr.test]) {
      expect(s.source.filter((t, i) => t === s.target[i])).toEqual([]);
      // ('command </dev/null' is text.)
      expect([...s.source, ...s.target].filter((t) => /<\/?[a-z]+\b[^>]*>|&[a-z]+;|&#\d+;|\s{2}/.test(t))).toEqual([]);
    }
  });

  test('paraBlocks keeps a paragraph whole around nested divs; paraText drops URL boxes', () => {
    const html =
      '<div class="para">See <code>apt</code> &amp; <div class="url">→ <a href="x">https://x</a></div> more.</div>' +
      '<div class="para"><div class="title">Title.</div>Body&#160;text</div>';
    const blocks = paraBlocks(html);
    expect(blocks).toHaveLength(2);
    expect(paraText(blocks[0])).toBe('See apt & more.');
    expect(paraText(blocks[1])).toBe('Title. Body text'); // a no-break space is a space
  });

  test('German and Spanish translations load the same way', async () => {
    for (const [name, target] of [
      ['handbook-en-de', 'de'],
      ['handbook-en-es', 'es'],
    ]) {
      const c = await loadParallelCorpus(name);
      expect(c.target).toBe(target);
      const total = size(c.train) + size(c.valid) + size(c.test);
      expect(total).toBeGreaterThan(2_200);
      expect(total).toBeLessThan(2_600);
    }
  });

  test('the cache is reused, checked against its manifest, and rebuilt identically', async () => {
    const again = await prepareParallelCorpus('handbook-en-fr');
    expect(again.createdAt).toBe(fr.manifest.createdAt); // not rebuilt
    const file = path.join(cache, 'parallel', 'handbook-en-fr', 'valid.tsv');
    fs.appendFileSync(file, 'x\ty\tz\n');
    await expect(loadParallelCorpus('handbook-en-fr')).rejects.toThrow(/valid\.tsv does not match its manifest's checksum/);
    const rebuilt = await prepareParallelCorpus('handbook-en-fr', { force: true });
    expect(rebuilt.checksum).toBe(fr.manifest.checksum);
    expect(size((await loadParallelCorpus('handbook-en-fr')).valid)).toBe(size(fr.valid));
  });
});

describe('your own pairs', () => {
  const dir = tmp('parallel-files');
  const file = (name: string, text: string): string => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, text);
    return f;
  };
  const tsv = file('pairs.tsv', 'Hello.\tBonjour.\n\nThank you.\tMerci.\r\nYes.\tOui.\n');
  const jsonl = file('pairs.jsonl', '{"source": "Good night.", "target": "Bonne nuit."}\n{"source":"Cat","target":"Chat"}\n');

  test('TSV: two columns a line, blank lines skipped, ids file:line; no valid/test files: empty splits', async () => {
    const c = await loadParallelCorpus({ name: 'mine', train: { files: [tsv], format: 'tsv' } });
    expect(c.train).toEqual({
      source: ['Hello.', 'Thank you.', 'Yes.'],
      target: ['Bonjour.', 'Merci.', 'Oui.'],
      ids: [`${tsv}:1`, `${tsv}:3`, `${tsv}:4`],
    });
    expect(c.valid.ids).toEqual([]);
    expect(c.test.ids).toEqual([]);
    expect(c.source).toBeUndefined();
    expect(c.manifest.sources[0]).toMatchObject({ file: tsv, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(c.manifest.splits.train).toMatchObject({ pairs: 3, units: 1 });
    const r = await loadParallelCorpus(
      { name: 'mine', train: { files: [tsv], format: 'tsv' }, test: { files: [jsonl], format: 'jsonl' } },
      { reverse: true },
    );
    expect(r.train.source).toEqual(['Bonjour.', 'Merci.', 'Oui.']);
    expect(r.test.source).toEqual(['Bonne nuit.', 'Chat']);
  });

  test('JSONL: source/target fields by default, or the fields named; TSV columns by index or header name', async () => {
    const c = await loadParallelCorpus({ name: 'j', train: { files: [jsonl], format: 'jsonl' }, valid: { files: [tsv], format: 'tsv' } });
    expect(c.train.target).toEqual(['Bonne nuit.', 'Chat']);
    expect(c.valid.target).toEqual(['Bonjour.', 'Merci.', 'Oui.']);
    const named = file('named.jsonl', '{"en": "Dog", "de": "Hund", "n": 1}\n');
    expect(
      (await loadParallelCorpus({ name: 'n', train: { files: [named], format: 'jsonl', sourceField: 'en', targetField: 'de' } })).train
        .target,
    ).toEqual(['Hund']);
    const header = file('header.tsv', 'id\tde\ten\n1\tHund\tDog\n2\tKatze\tCat\n');
    const h = await loadParallelCorpus({ name: 'h', train: { files: [header], format: 'tsv', sourceField: 'en', targetField: 'de' } });
    expect(h.train).toMatchObject({ source: ['Dog', 'Cat'], target: ['Hund', 'Katze'] });
    const byIndex = await loadParallelCorpus({
      name: 'i',
      train: { files: [file('three.tsv', '1\tHund\tDog\n')], format: 'tsv', sourceField: 2, targetField: 1 },
    });
    expect(byIndex.train).toMatchObject({ source: ['Dog'], target: ['Hund'] });
  });

  test('every bad spec or file is an error naming the field, file and line', async () => {
    const bad = async (spec: unknown, re: RegExp, options?: unknown): Promise<void> => {
      await expect(loadParallelCorpus(spec as never, options as never)).rejects.toThrow(re);
    };
    const train = (files: string[], format = 'tsv', extra: object = {}): unknown => ({ name: 'x', train: { files, format, ...extra } });
    await bad('wmt14', /'wmt14' is not built in; expected one of: bible-en-es, handbook-en-fr, handbook-en-de, handbook-en-es/);
    await bad(42, /expected a built-in name/);
    await bad(train([tsv], 'csv'), /train\.format: Invalid option: expected one of "tsv"\|"jsonl"/);
    await bad({ train: { files: [tsv], format: 'tsv' } }, /name: Invalid input: expected string/);
    await bad(train([]), /train\.files: Too small/);
    await bad({ ...(train([tsv]) as object), extra: 1 }, /Unrecognized key: "extra"/);
    await bad(train([path.join(dir, 'missing.tsv')]), /train\.files\[0\]: no such file: .*missing\.tsv/);
    await bad(train([tsv, file('empty.tsv', '')]), /train\.files\[1\]: .*empty\.tsv is empty/);
    await bad(
      train([file('cols.tsv', 'a\tb\nc\td\te\n')]),
      /train\.files\[0\] .*cols\.tsv: line 2: 3 tab-separated columns, expected 2 \(source<TAB>target\)/,
    );
    await bad(train([file('one.tsv', 'a\tb\nonly one column\n')]), /line 2: 1 tab-separated column, expected 2/);
    await bad(train([file('blank.tsv', 'a\tb\nc\t \n')]), /blank\.tsv: line 2: empty target \(column 1\)/);
    await bad(train([file('blank0.tsv', '\tb\n')]), /blank0\.tsv: line 1: empty source \(column 0\)/);
    await bad(
      train([file('hdr.tsv', 'en\tfr\na\tb\n')], 'tsv', { sourceField: 'de' }),
      /train\.sourceField: no column "de" in the header of .*hdr\.tsv \(columns: en, fr\)/,
    );
    await bad(train([file('bad.jsonl', '{"source":"a","target":"b"}\n{oops\n')], 'jsonl'), /bad\.jsonl: line 2: bad JSON/);
    await bad(train([file('nofield.jsonl', '{"source":"a"}\n')], 'jsonl'), /nofield\.jsonl: line 1: no target field "target"/);
    await bad(
      train([file('num.jsonl', '{"source":"a","target":3}\n')], 'jsonl'),
      /line 1: target field "target" is a number, expected a string/,
    );
    await bad(train([file('emptyf.jsonl', '{"source":" ","target":"b"}\n')], 'jsonl'), /line 1: empty source field "source"/);
    await bad(train([file('arr.jsonl', '["a","b"]\n')], 'jsonl'), /line 1: expected a JSON object with "source" and "target"/);
    await bad(
      { name: 'x', train: { files: [tsv], format: 'tsv' }, valid: { files: [path.join(dir, 'nope.tsv')], format: 'tsv' } },
      /valid\.files\[0\]: no such file/,
    );
    await bad(train([tsv]), /maxPairs: Too small/, { maxPairs: 0 });
    await bad(train([tsv]), /minChars: minChars must be <= maxChars/, { minChars: 10, maxChars: 5 });
    await bad(train([tsv]), /Unrecognized key: "max"/, { max: 5 });
  });
});

test('every built-in corpus is declared with its packages, languages and held-out units', () => {
  for (const [name, s] of Object.entries(PARALLEL_SOURCES)) {
    expect(name).toBe(`${s.packages[0] === 'debian-handbook' ? 'handbook' : 'bible'}-${s.source}-${s.target}`);
    expect(s.valid.length).toBeGreaterThan(0);
    expect(s.test.length).toBeGreaterThan(0);
    expect(s.valid.filter((u) => s.test.includes(u))).toEqual([]);
  }
});

test('data list shows the parallel corpora with their directions and pair counts', async () => {
  const { dataList } = await import('../lib/cli/data');
  const { parseArgs } = await import('../lib/cli/args');
  const lines: string[] = [];
  const log = jest.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void lines.push(a.join(' ')));
  try {
    await prepareParallelCorpus('handbook-en-fr');
    await dataList.run(parseArgs(dataList, ['--root', tmp('parallel-root')]));
  } finally {
    log.mockRestore();
  }
  const out = lines.join('\n');
  expect(out).toMatch(/handbook-en-fr\s+en->fr\s+train \d+ \/ valid \d+ \/ test \d+ pairs/);
  expect(out).toMatch(/sword-text-kjv@14\.3-1\s+installed/);
});
