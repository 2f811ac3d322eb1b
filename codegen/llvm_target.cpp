// llvm_target.cpp: what frost needs from LLVM that its C API lacks: whether a
// target knows a CPU name, and the names it knows. Creating a target machine
// for an unknown CPU prints warnings and, for x86-64, aborts the process
// ("64-bit code requested on a subtarget that doesn't support it"), so
// codegen/target.c checks --mcpu with these first.
#include <cstdio>
#include <memory>
#include <string>

#include <unistd.h>

#include <llvm/ADT/StringRef.h>
#include <llvm/Config/llvm-config.h>
#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/Support/raw_ostream.h>
#if __has_include(<llvm/MC/TargetRegistry.h>)
#include <llvm/MC/TargetRegistry.h>
#else
#include <llvm/Support/TargetRegistry.h>
#endif

#include "target_names.h"

static llvm::MCSubtargetInfo *subtarget(const char *triple, const char *cpu) {
    std::string err;
    const llvm::Target *target = llvm::TargetRegistry::lookupTarget(triple, err);
    return target ? target->createMCSubtargetInfo(triple, cpu, "") : nullptr;
}

extern "C" int cg_target_knows_cpu(const char *triple, const char *cpu) {
    std::unique_ptr<llvm::MCSubtargetInfo> sti(subtarget(triple, ""));
    if (!sti)
        return -1;
    return sti->isCPUStringValid(cpu) ? 1 : 0;
}

extern "C" int cg_target_has_feature(const char *triple, const char *cpu, const char *features, const char *feature) {
    std::string err;
    const llvm::Target *target = llvm::TargetRegistry::lookupTarget(triple, err);
    if (!target)
        return -1;
    std::unique_ptr<llvm::MCSubtargetInfo> sti(target->createMCSubtargetInfo(triple, cpu, features));
    if (!sti)
        return -1;
    return sti->checkFeatures(std::string("+") + feature) ? 1 : 0;
}

#if LLVM_VERSION_MAJOR >= 15
extern "C" int cg_target_cpus(const char *triple, void (*each)(const char *name, void *ctx), void *ctx) {
    std::unique_ptr<llvm::MCSubtargetInfo> sti(subtarget(triple, ""));
    if (!sti)
        return -1;
    int n = 0;
    for (const auto &cpu : sti->getAllProcessorDescriptions()) {
        each(std::string(cpu.Key).c_str(), ctx);
        n++;
    }
    return n;
}
#else
// LLVM 14 keeps its processor table private; the only way it gives the names
// out is the listing it prints to stderr for the CPU "help". Catch that in a
// temporary file and keep the "  name - Select the name processor." lines.
extern "C" int cg_target_cpus(const char *triple, void (*each)(const char *name, void *ctx), void *ctx) {
    std::FILE *tmp = std::tmpfile();
    if (!tmp)
        return -1;
    llvm::errs().flush();
    int saved = dup(2);
    if (saved < 0 || dup2(fileno(tmp), 2) < 0) {
        if (saved >= 0)
            close(saved);
        std::fclose(tmp);
        return -1;
    }
    std::unique_ptr<llvm::MCSubtargetInfo> sti(subtarget(triple, "help"));
    llvm::errs().flush();
    dup2(saved, 2);
    close(saved);
    if (!sti) {
        std::fclose(tmp);
        return -1;
    }
    std::rewind(tmp);
    char line[512];
    int n = 0;
    bool in_cpus = false;
    while (std::fgets(line, sizeof line, tmp)) {
        llvm::StringRef l(line);
        if (l.startswith("Available CPUs")) {
            in_cpus = true;
            continue;
        }
        if (l.startswith("Available features"))
            break;
        size_t dash = l.find(" - ");
        if (!in_cpus || dash == llvm::StringRef::npos)
            continue;
        std::string name = l.substr(0, dash).trim().str();
        if (!name.empty()) {
            each(name.c_str(), ctx);
            n++;
        }
    }
    std::fclose(tmp);
    return n;
}
#endif
