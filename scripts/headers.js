// Where the addon's headers came from, read from the compiler's own dependency files after a cmake build
// (scripts/build.js --check-headers; scripts/gpu-check builds with it). A build that is to run on a bare
// machine (a GPU machine lent with its image only: a CUDA torch, a compiler, cmake) may take headers from
// libtorch, this tree (native/ and native/third_party, and a gpu-check pack: .gpu-check/), the Node-API
// packages, the gloo/NCCL folders scripts/torch.js chose (unless that is a system folder), and the compiler's
// C and C++ library (glibc's and the kernel's headers, libstdc++'s, the compiler's own). Anything else (a
// Debian -dev package's /usr/include/nlohmann, /usr/include/gloo, /usr/include/sentencepiece_processor.h)
// would be missing there: the check names every such header and fails.
//
// The dependency files: Makefiles (CMake >= 3.20 with GCC/Clang) keep one <object>.o.d per object; Ninja
// folds them into its log, read back with `ninja -t deps`. Only the engine, the addon and the engine's test
// program are checked (the tokenizer plugin links the system's SentencePiece by design, and gpu-check leaves it out).
'use strict';
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

/** The targets whose objects are checked (CMakeLists.txt's names). */
const TARGETS = ['trainlarge_engine', 'trainlarge', 'trainlarge_engine_test'];

// glibc's top-level headers (Debian 12's libc6-dev; the same names on every glibc system) and the folders
// glibc and the kernel's uapi headers install under /usr/include and its multiarch folder.
const LIBC_TOP =
  'aio aliases alloca ar argp argz assert byteswap complex cpio ctype dirent dlfcn elf endian envz err errno error ' +
  'execinfo fcntl features features-time64 fenv fmtmsg fnmatch fstab fts ftw gconv getopt glob gnu-versions grp ' +
  'gshadow iconv ifaddrs inttypes langinfo lastlog libgen libintl limits link locale malloc math mcheck memory ' +
  'mntent monetary mqueue netdb nl_types nss obstack paths poll printf proc_service pthread pty pwd re_comp regex ' +
  'regexp resolv sched search semaphore setjmp sgtty shadow signal spawn stab stdc-predef stdint stdio stdio_ext ' +
  'stdlib string strings syscall sysexits syslog tar termio termios tgmath thread_db threads time ttyent uchar ' +
  'ucontext ulimit unistd utime utmp utmpx values wait wchar wctype wordexp a.out fpu_control ieee754';
const LIBC_DIRS = 'arpa bits gnu sys net netinet netpacket nfs protocols rpc scsi finclude linux asm asm-generic';

/** The compiler's include search list (`c++ -E -v`), split into its private folders and the shared ones. */
function compilerDirs(cxx = process.env.CXX || 'c++') {
  // gcc and clang print the list on stderr.
  const r = spawnSync(cxx, ['-x', 'c++', '-E', '-v', '-'], { input: '', encoding: 'utf8' });
  const text = `${r.stdout || ''}\n${r.stderr || ''}`;
  const m = /#include <\.\.\.> search starts here:\n([\s\S]*?)End of search list/.exec(text);
  const dirs = m
    ? m[1]
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean)
        .map((d) => real(d))
    : [];
  const shared = new Set(['/usr/include', '/usr/local/include'].map(real));
  // The multiarch folder (/usr/include/x86_64-linux-gnu) holds glibc's arch headers and other libraries' too.
  const multiarch = dirs.filter((d) => /^\/usr\/include\/[^/]+-linux-gnu[^/]*$/.test(d));
  return {
    cxx,
    private: dirs.filter((d) => !shared.has(d) && !multiarch.includes(d)),
    system: [...new Set([...shared, ...multiarch])],
  };
}

function real(p) {
  try {
    return fs.realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

const under = (file, dir) => file === dir || file.startsWith(dir.endsWith(path.sep) ? dir : dir + path.sep);

/** Whether a header under a shared system folder is glibc's or the kernel's. */
function isLibc(file, systemDirs) {
  // The most specific folder first: /usr/include/x86_64-linux-gnu/bits/... is the multiarch folder's bits/.
  for (const dir of [...systemDirs].sort((a, b) => b.length - a.length)) {
    if (!under(file, dir)) continue;
    const rel = path.relative(dir, file).split(path.sep);
    if (rel.length === 1) return LIBC_TOP.split(' ').includes(rel[0].replace(/\.h$/, ''));
    return LIBC_DIRS.split(' ').includes(rel[0]);
  }
  return false;
}

/** Parses a make-syntax dependency file: the prerequisites of its first rule. */
function parseDepfile(text) {
  const body = text.replace(/\\\r?\n/g, ' ');
  const colon = body.search(/:\s/);
  if (colon < 0) return [];
  return (
    body
      .slice(colon + 1)
      .split('\n')[0]
      .match(/(?:\\ |[^\s])+/g) || []
  ).map((p) => p.replace(/\\ /g, ' '));
}

/** Every object of TARGETS in a cmake build folder with the headers it included (absolute, real paths). */
function dependencies(buildDir) {
  const out = new Map();
  const wanted = (obj) => TARGETS.some((t) => obj.replace(/\\/g, '/').includes(`CMakeFiles/${t}.dir/`));
  if (fs.existsSync(path.join(buildDir, 'build.ninja'))) {
    const text = execFileSync('ninja', ['-C', buildDir, '-t', 'deps'], { encoding: 'utf8', maxBuffer: 256 << 20 });
    let current = null;
    for (const line of text.split('\n')) {
      const head = /^(\S.*?): #deps \d+/.exec(line);
      if (head) {
        current = wanted(head[1]) ? head[1] : null;
        if (current) out.set(current, []);
      } else if (current && line.trim()) {
        out.get(current).push(real(path.resolve(buildDir, line.trim())));
      }
    }
    return out;
  }
  const walk = (d) =>
    fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => {
      const p = path.join(d, e.name);
      return e.isDirectory() ? walk(p) : e.name.endsWith('.o.d') ? [p] : [];
    });
  for (const t of TARGETS) {
    const dir = path.join(buildDir, 'CMakeFiles', `${t}.dir`);
    if (!fs.existsSync(dir)) continue;
    for (const f of walk(dir))
      out.set(
        path.relative(buildDir, f),
        parseDepfile(fs.readFileSync(f, 'utf8')).map((p) => real(path.resolve(buildDir, p))),
      );
  }
  return out;
}

/**
 * Checks a cmake build folder's dependency files against the allowed folders. `allowed`: folders whose
 * headers may be used (libtorch's, the tree's, the Node-API packages', gloo's and NCCL's as chosen).
 * Returns { objects, headers, outside: [{ header, object }] } ; throws when the build left no dependency files.
 */
function checkHeaders(buildDir, allowed, cxx) {
  const deps = dependencies(buildDir);
  if (deps.size === 0)
    throw new Error(`trainlarge: no dependency files for ${TARGETS.join(', ')} in ${buildDir}: cannot check where headers came from`);
  const compiler = compilerDirs(cxx);
  const ok = [...allowed.map(real), ...compiler.private];
  const seen = new Map();
  for (const [object, files] of deps) {
    for (const f of files) if (!seen.has(f)) seen.set(f, object);
  }
  const outside = [];
  for (const [header, object] of seen) {
    if (ok.some((d) => under(header, d)) || isLibc(header, compiler.system)) continue;
    outside.push({ header, object });
  }
  outside.sort((a, b) => a.header.localeCompare(b.header));
  return { objects: deps.size, headers: seen.size, outside, compiler };
}

module.exports = { checkHeaders, parseDepfile, compilerDirs, isLibc };
