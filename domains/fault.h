/*
 * domains/fault.h - the fault report: a SIGSEGV handler that names the
 * domain of a protection-key fault, then passes the signal on.
 */
#ifndef KH_DOMAINS_FAULT_H
#define KH_DOMAINS_FAULT_H

/*
 * khi_fault_install - installs keyheap's SIGSEGV handler, once per process,
 * when domains get hardware keys and KEYHEAP_CONF does not say
 * fault_report:false; otherwise does nothing.  The action it replaces is
 * kept, and every SIGSEGV goes on to it after the report (if any).
 * pre: the caller holds khi_domains_lock (keyheap_domain_create calls it
 * after a successful creation).
 */
__attribute__((visibility("hidden"))) void khi_fault_install(void);

#endif /* KH_DOMAINS_FAULT_H */
